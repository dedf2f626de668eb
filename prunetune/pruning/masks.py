"""Mask-then-prune (seed 003 2.5): zero channels at intermediate steps, cut them at the last.

A masked channel has every *producing* parameter zeroed across its Torch-Pruning group:
the output rows (weight and bias) of each Conv/Linear that emits it, including depthwise
convs and SE gates, and the affine weight and bias of each norm layer on it. Its signal
is then exactly 0 after BN, so with activations where f(0) = 0 (ReLU, Hardswish, SiLU,
GELU, ...) every consumer sees zeros, which is what removing it would give: the masked
and the cut model compute the same function. Sigmoid/Tanh-like activations right after
a masked producer break this (f(0) != 0); such models should not use mask-then-prune.

Masks must be re-applied after every optimizer step (``ChannelMasks.apply``): training
would otherwise regrow the zeroed parameters. MACs of a masked model are measured on a
copy with the masked channels removed physically (``masked_complexity``), so they count
live channels only and equal the physically pruned model's by construction.
"""

from __future__ import annotations

import copy

import torch
import torch_pruning as tp
from torch import nn

from prunetune.models.complexity import Complexity, measure
from prunetune.pruning.scope import all_groups, build_graph
from prunetune.torch_tools import handler_side, plain_indices

NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


class ChannelMasks:
    """Masked channels per group name (root indices), and the zeroing they imply."""

    def __init__(self) -> None:
        self.masked: dict[str, list[int]] = {}
        self._targets: list[tuple[torch.Tensor, int, list[int]]] = []  # (tensor, dim, indices)

    def __bool__(self) -> bool:
        return any(self.masked.values())

    def count(self) -> int:
        return sum(len(v) for v in self.masked.values())

    def set(self, masked: dict[str, list[int]], tp_groups: dict[str, tp.dependency.Group]) -> None:
        """Replace the masks by ``masked`` and zero the parameters they cover.

        ``tp_groups[name]`` is Torch-Pruning's pruning group for ``masked[name]``: it maps
        the root indices onto every coupled layer.
        """
        self.masked = {name: sorted(idxs) for name, idxs in masked.items() if idxs}
        self._targets = []
        for name in self.masked:
            for dep, layer_idxs in tp_groups[name]:
                self._targets.extend(_producing_tensors(dep, plain_indices(layer_idxs)))
        self.apply()

    @torch.no_grad()
    def apply(self) -> None:
        for tensor, dim, idxs in self._targets:
            tensor.index_fill_(dim, torch.as_tensor(idxs, device=tensor.device), 0.0)

    @torch.no_grad()
    def masked_magnitude(self) -> float:
        """Sum of |parameter| over everything the masks cover: 0 right after ``apply``."""
        return sum(float(t.index_select(d, torch.as_tensor(i, device=t.device)).abs().sum())
                   for t, d, i in self._targets)

    def clear(self) -> None:
        self.masked, self._targets = {}, []


def _producing_tensors(dep, idxs: list[int]) -> list[tuple[torch.Tensor, int, list[int]]]:
    module = dep.target.module
    tensors = []
    if isinstance(module, NORMS):
        for tensor in (getattr(module, "weight", None), getattr(module, "bias", None)):
            if tensor is not None:
                tensors.append((tensor.data, 0 if tensor.ndim == 1 else tensor.ndim - 1, idxs))
    elif isinstance(module, (nn.Conv2d, nn.Conv1d, nn.Linear)) and handler_side(dep.handler) == "out":
        for tensor in (module.weight, module.bias):
            if tensor is not None:
                tensors.append((tensor.data, 0, idxs))
    return tensors


def cut_copy(model: nn.Module, masked: dict[str, list[int]], example: torch.Tensor) -> nn.Module:
    """A copy of ``model`` with its masked channels removed physically."""
    trial = copy.deepcopy(model)
    graph = build_graph(trial, example)
    by_name = {group.name: group for group in all_groups(trial, graph)}
    for name, idxs in masked.items():
        if idxs:
            root = by_name[name].group[0].dep
            graph.get_pruning_group(root.target.module, root.handler, sorted(idxs)).prune()
    return trial


def masked_complexity(model: nn.Module, masked: dict[str, list[int]], example: torch.Tensor,
                      channels: int, image_size: int) -> Complexity:
    """MACs and params of ``model`` with its masked channels removed (a copy is cut)."""
    return measure(cut_copy(model, masked, example), channels, image_size)
