"""Models by name (prunetune, torchvision, timm, module:callable), checkpoints, MACs."""

from prunetune.models.build import build_model, load_checkpoint, resolve
from prunetune.models.complexity import Complexity, measure
from prunetune.models.zoo import MODELS

__all__ = ["MODELS", "Complexity", "build_model", "load_checkpoint", "measure", "resolve"]
