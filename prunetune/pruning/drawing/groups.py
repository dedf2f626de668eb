"""What each group's box says: scope status, channels, and what the schedule removes there.

Status against the job's scope: ``in scope`` (the scope chose it), ``included`` (a
``pruning.include`` pattern added it), ``excluded`` (the scope chose it, a
``pruning.exclude`` pattern took it out), ``out of scope``. The counts come from the scope
code itself (``all_groups``, the ``SCOPES`` registry, ``select_scope``).

The step counts are the job's own selection (``Pruner.scores`` + ``select_channels``, with
its ``max_layer_ratio`` and ``round_to``) at the schedule's first and last target, ranked
once by the dense model, as the MAC-target solver ranks its candidates: a run re-scores
after every cut, so its later steps can differ by a few channels. A criterion that needs
calibration data (vbp, taylor) is replaced by l1 for the ranking, and the drawing says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunetune.pruning.drawing.graph import DrawnGroup
from prunetune.pruning.pruner import Pruner
from prunetune.pruning.schedules import schedule_targets, solve_mac_target
from prunetune.pruning.scope import PrunableGroup, all_groups, matching_pattern, select_scope
from prunetune.pruning.selection import select_channels
from prunetune.registry import SCOPES


def scope_groups(model: nn.Module, graph, scope: str, include: tuple[str, ...] = (),
                 exclude: tuple[str, ...] = ()) -> list[tuple[PrunableGroup, DrawnGroup]]:
    """Every prunable group with its box, numbered G1, G2, ... in the order of the model's layers."""
    groups = all_groups(model, graph)
    base = {g.name for g in SCOPES.get(scope, field="pruning.scope")(model, groups)}
    chosen = {g.name for g in select_scope(model, graph, scope, include, exclude)}
    position = {name: index for index, (name, _) in enumerate(model.named_modules())}
    drawn = []
    for index, group in enumerate(sorted(groups, key=lambda g: position[g.name]), start=1):
        if group.name in chosen and group.name in base:
            status, pattern = "in scope", None
        elif group.name in chosen:
            status, pattern = "included", matching_pattern(group, include)
        elif group.name in base:
            status, pattern = "excluded", matching_pattern(group, exclude)
        else:
            status, pattern = "out of scope", None
        members = tuple(dict.fromkeys(name for name, _, _ in group.members))
        drawn.append((group, DrawnGroup(index, group.name, group.channels, status, pattern, members=members)))
    return drawn


@dataclass(frozen=True)
class StepCounts:
    targets: list[float]
    removed: dict[str, tuple[int, int, int]]  # group name -> (first step removes, last step removes, left after it)
    ranking: str                              # the criterion that ranked the channels, and why if a stand-in


def data_free(pruning):
    """The job's pruning config with a criterion that needs no calibration data (l1 for vbp / taylor)."""
    from prunetune.pruning.criteria import get_criterion

    criterion = get_criterion(pruning)
    if not (criterion.needs_stats or criterion.needs_gradients):
        return pruning, pruning.criterion
    if pruning.criterion == "mac_aware":
        stand_in = pruning.model_copy(update={"mac_aware": pruning.mac_aware.model_copy(update={"base": "l1"})})
        return stand_in, f"mac_aware over l1 (its base {pruning.mac_aware.base} needs calibration data)"
    return pruning.model_copy(update={"criterion": "l1"}), f"l1 ({pruning.criterion} needs calibration data)"


def step_counts(model: nn.Module, example: torch.Tensor, pruning, channels: int, seed: int = 0,
                latency=None, graph=None) -> StepCounts:
    """Per group in scope: the channels the schedule's first and last step remove, and what is left
    (``graph``: the model's traced graph, if there is one already)."""
    config, ranking = data_free(pruning)
    pruner = Pruner(model, example, config, seed=seed, latency=latency, graph=graph)
    scores = pruner.scores()

    def solve() -> float:
        return solve_mac_target(lambda m: Pruner(m, example, config, seed, latency), model, channels,
                                example.shape[-1], config.schedule.mac_target, scores)[0]

    targets = schedule_targets(config.schedule, solve)
    groups = pruner.groups()

    def removed(target: float | None) -> dict[str, int]:
        if target is None:
            return {}
        chosen = select_channels(groups, scores, target, pruner.original, config.max_layer_ratio, config.round_to)
        return {name: len(idxs) for name, idxs in chosen.remove.items()}

    first, last = removed(targets[0]), removed(targets[-1])
    before_last = removed(targets[-2] if len(targets) > 1 else None)
    counts = {g.name: (first.get(g.name, 0), last.get(g.name, 0) - before_last.get(g.name, 0),
                       g.channels - last.get(g.name, 0)) for g in groups}
    return StepCounts(targets, counts, ranking)
