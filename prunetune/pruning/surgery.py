"""The structural cut: remove the selected channels through Torch-Pruning's groups."""

from __future__ import annotations

import torch_pruning as tp

from prunetune.pruning.scope import PrunableGroup
from prunetune.pruning.selection import Selection


def remove_channels(graph: tp.DependencyGraph, groups: list[PrunableGroup], selection: Selection) -> int:
    """Prune ``selection`` physically; returns the number of channels removed.

    Every prune creates new Parameter objects: optimizers built before it are stale.
    """
    removed = 0
    by_name = {group.name: group for group in groups}
    for name, idxs in selection.remove.items():
        if not idxs:
            continue
        root = by_name[name].group[0].dep
        group = graph.get_pruning_group(root.target.module, root.handler, sorted(idxs))
        if not graph.check_pruning_group(group):
            raise RuntimeError(f"Torch-Pruning rejected removing {len(idxs)} channels from group {name}")
        group.prune()
        removed += len(idxs)
    return removed
