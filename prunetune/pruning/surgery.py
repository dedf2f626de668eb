"""The structural cut: remove the selected channels through Torch-Pruning's groups."""

from __future__ import annotations

from collections.abc import Callable

import torch_pruning as tp

from prunetune.pruning.attention import sync_head_widths
from prunetune.pruning.scope import PrunableGroup
from prunetune.pruning.selection import Selection


def pruning_groups(graph: tp.DependencyGraph, groups: list[PrunableGroup],
                   remove: dict[str, list[int]]) -> dict[str, tp.dependency.Group]:
    """Torch-Pruning's pruning group per group name: the root indices mapped onto every layer."""
    by_name = {group.name: group for group in groups}
    result = {}
    for name, idxs in remove.items():
        if not idxs:
            continue
        root = by_name[name].group[0].dep
        group = graph.get_pruning_group(root.target.module, root.handler, sorted(idxs))
        if not graph.check_pruning_group(group):
            raise RuntimeError(f"Torch-Pruning rejected removing {len(idxs)} channels from group {name}")
        result[name] = group
    return result


def remove_channels(graph: tp.DependencyGraph, groups: list[PrunableGroup], selection: Selection,
                    before_cut: Callable[[tp.dependency.Group], object] | None = None) -> int:
    """Prune ``selection`` physically; returns the number of channels removed.

    ``before_cut`` sees each TP group while the channels still exist (bias compensation).
    Groups are resolved one at a time because each cut renumbers the channels of the
    layers it touches. Every prune creates new Parameter objects: optimizers built before
    it are stale.
    """
    removed = 0
    for name, idxs in selection.remove.items():
        for group in pruning_groups(graph, groups, {name: idxs}).values():
            if before_cut is not None:
                before_cut(group)
            group.prune()
            removed += len(idxs)
    sync_head_widths(graph.model)
    return removed
