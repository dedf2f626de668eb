"""MACs and parameter counts, via Torch-Pruning's op counter."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from prunetune.torch_tools import evaluation_mode


@dataclass(frozen=True)
class Complexity:
    macs: int
    params: int


def example_input(channels: int, image_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.randn(1, channels, image_size, image_size, device=device)


@torch.no_grad()
def measure(model: nn.Module, channels: int, image_size: int) -> Complexity:
    """MACs of one image and the parameter count. Leaves the model's train/eval mode as it was.

    Torch-Pruning's counter sees modules only: functional calls (F.conv2d in a forward)
    are not counted.
    """
    device = next(model.parameters()).device
    with evaluation_mode(model):
        macs, params = tp.utils.count_ops_and_params(model, example_input(channels, image_size, device))
    return Complexity(macs=int(macs), params=int(params))
