"""Save and load a pruned model so a fresh process can use it without the pruning code.

A pruned model's layers have shapes no builder produces, so a plain state_dict cannot be
loaded into a freshly built model. We save the *whole module* (pickled with its classes)
plus a metadata dict. Consequences, by design:

- Loading needs ``torch.load(..., weights_only=False)``: the file holds pickled Python
  objects, and unpickling runs code, so only load files you trust (your own runs).
- The classes must be importable where it is loaded (torchvision / timm / prunetune's
  zoo / the user's module for ``package.module:callable`` models), but neither
  Torch-Pruning nor any prunetune pruning module is needed: the pruned layers are plain
  ``nn.Conv2d`` / ``nn.Linear`` / ``nn.BatchNorm2d`` objects with smaller shapes.
- The model is saved on the CPU and in eval mode so it loads anywhere.
"""

from __future__ import annotations

import copy
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunetune.errors import ModelError, RunError
from prunetune.io import write_atomic

FORMAT = "prunetune.pruned-model/1"
# What torch.load raises on a damaged or foreign file (seen on cut files, flipped bytes and
# random bytes): a length read from garbage can even ask for exabytes (MemoryError).
DAMAGED_FILE_ERRORS = (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, TypeError, KeyError, IndexError,
                       AssertionError, OverflowError, MemoryError, zipfile.BadZipFile)


@dataclass
class PrunedModel:
    model: nn.Module
    metadata: dict[str, Any] = field(default_factory=dict)


def save_pruned(model: nn.Module, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (a CPU copy, eval mode) and ``metadata`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    portable = copy.deepcopy(model).cpu().eval()
    payload = {"format": FORMAT, "model": portable, "metadata": dict(metadata or {})}
    try:
        write_atomic(path, lambda target: torch.save(payload, target))
    except (pickle.PicklingError, AttributeError, TypeError) as error:
        raise RunError(f"cannot save the pruned model to {path}: it does not pickle ({error}); "
                       "models holding lambdas or local classes cannot be saved whole") from None
    return path


def load_pruned(path: str | Path, map_location: str | torch.device = "cpu") -> PrunedModel:
    """Load a file written by ``save_pruned``. Uses ``weights_only=False``: trusted files only."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"pruned model file not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except DAMAGED_FILE_ERRORS as error:
        reason = str(error).strip().split("\n")[0].split(". ")[0]  # torch appends paragraphs of advice
        raise ModelError(f"{path} is not a readable pruned model (damaged or another kind of file): "
                         f"{type(error).__name__}{': ' + reason if reason else ''}") from None
    except (ModuleNotFoundError, AttributeError) as error:
        raise ModelError(f"{path}: the model's classes cannot be imported here ({error}); "
                         "install the package that defines the model") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelError(f"{path} is not a prunetune pruned model (expected format {FORMAT!r})")
    return PrunedModel(payload["model"], payload.get("metadata", {}))
