"""Sparsity schedules, one registry: each turns a ``ScheduleConfig`` into cumulative targets.

Targets are channel sparsities of the scope, counted from the original channel count
(seed 001). ``linear`` divides the final sparsity p equally (p t / N); ``geometric``
keeps the same fraction q = r^(1/N) of the *current* channels each step, r = 1 - p
(seed 003 1.2.1); ``one_shot`` is one step to p; ``targets`` is an explicit list; ``none``
makes no channel step (the tkp stage alone prunes).
``mac_target`` first solves for the channel sparsity whose pruned model keeps
``mac_target`` of the MACs (``solve_mac_target``, starting from seed 003 2.2's quadratic
estimate), then steps to it geometrically.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from prunetune.models.complexity import measure
from prunetune.pruning.criteria import output_sizes
from prunetune.pruning.scope import PrunableGroup
from prunetune.registry import SCHEDULES


# An entry is ``(config, solve) -> targets``; ``solve()`` runs the MAC-target solver on the
# job's model and returns the channel sparsity that keeps ``config.mac_target`` of the
# MACs. It is only called by a schedule that asks for it, so the others cost nothing.
SolveMacTarget = Callable[[], float]


@SCHEDULES.register("targets")
def explicit_targets(config, solve: SolveMacTarget | None = None) -> list[float]:
    """The listed cumulative sparsities."""
    return list(config.targets)


@SCHEDULES.register("linear")
def linear(config, solve: SolveMacTarget | None = None, final: float | None = None) -> list[float]:
    """final_sparsity in equal steps: p t / N."""
    final = config.final_sparsity if final is None else final
    return [final * step / config.steps for step in range(1, config.steps + 1)]


@SCHEDULES.register("geometric")
def geometric(config, solve: SolveMacTarget | None = None, final: float | None = None) -> list[float]:
    """The same fraction of the current channels each step (seed 003 1.2.1)."""
    final = config.final_sparsity if final is None else final
    keep_per_step = (1.0 - final) ** (1.0 / config.steps)
    return [1.0 - keep_per_step**step for step in range(1, config.steps + 1)]


@SCHEDULES.register("one_shot")
def one_shot(config, solve: SolveMacTarget | None = None) -> list[float]:
    """One step to final_sparsity."""
    return [config.final_sparsity]


@SCHEDULES.register("none")
def no_cuts(config, solve: SolveMacTarget | None = None) -> list[float]:
    """No channel steps: the tkp stage alone prunes (tkp.topk / tkp.nm)."""
    return []


@SCHEDULES.register("mac_target")
def mac_target(config, solve: SolveMacTarget | None = None) -> list[float]:
    """Geometric steps to the sparsity whose cut keeps mac_target of the MACs."""
    if solve is None:
        raise ValueError("the mac_target schedule needs the MAC-target solver (schedule_targets(config, solve))")
    return geometric(config, final=solve())


def schedule_targets(config, solve: SolveMacTarget | None = None) -> list[float]:
    """Cumulative target sparsities of a ``ScheduleConfig``."""
    return SCHEDULES.get(config.kind, field="pruning.schedule.kind")(config, solve)


def quadratic_estimate(unpruned: float, one_sided: float, two_sided: float, mac_target: float) -> float:
    """Seed 003 2.2: mac_target = (U + S1 q + S2 q^2) / T, solved for the keep ratio q; returns 1 - q.

    A target below what the cut can reach (under U / T) has no root: sparsity 1, clamped.
    """
    total = unpruned + one_sided + two_sided
    a, b, c = two_sided, one_sided, unpruned - mac_target * total
    if a == 0:
        q = -c / b if b else 1.0
    else:
        q = (-b + max(0.0, b * b - 4 * a * c) ** 0.5) / (2 * a)
    return float(min(1.0, max(0.0, 1.0 - q)))


def mac_split(model: nn.Module, groups: list[PrunableGroup], example: torch.Tensor) -> tuple[float, float, float]:
    """Seed 003 2.2's U, S1, S2: the Conv/Linear MACs of one image that the scope's cut leaves
    alone, scales once (input or output channels in scope; a depthwise conv, whose input and
    output channels are one set) and scales twice (both)."""
    sides: dict[nn.Module, set[str]] = {}
    for group in groups:
        for _, module, side in group.members:
            sides.setdefault(module, set()).add(side)
    split = [0.0, 0.0, 0.0]
    for module, size in output_sizes(model, example).items():
        if isinstance(module, nn.Conv2d):
            macs = size * module.in_channels / module.groups * module.kernel_size[0] * module.kernel_size[1]
        else:
            macs = size * module.in_features
        split[len(sides.get(module, set()) & {"in", "out"})] += macs
    return split[0], split[1], split[2]


def solve_mac_target(make_pruner: Callable[[nn.Module], object], model: nn.Module, channels: int, image_size: int,
                     mac_target: float, scores: dict[str, torch.Tensor], tolerance: float = 0.01,
                     iterations: int = 20) -> tuple[float, float]:
    """Channel sparsity whose one-shot cut keeps ``mac_target`` of the MACs, on the real counter.

    ``scores`` are the dense model's channel scores (``Pruner.scores``): that ranking decides
    the cut at every candidate sparsity, so every criterion works (taylor's gradients and
    vbp's statistics exist on the real model only) and scoring runs once. Candidates are cut
    on copies of the model. The first is seed 003 2.2's quadratic estimate from the scope's
    ``mac_split``; each next one solves the same quadratic shifted by the gap the last cut
    measured (the global ranking does not keep every layer's ratio equal, as the estimate
    assumes), or bisects the bracket of the cuts so far (MACs fall as sparsity rises) when
    that lands outside it. Stops within ``tolerance`` (relative) of the target MACs, or when
    the bracket is narrower than one channel of the scope. Returns the closest (sparsity,
    MAC ratio) cut.
    """
    baseline = measure(model, channels, image_size).macs
    pruner = make_pruner(copy.deepcopy(model))
    split = mac_split(pruner.model, pruner.groups(), pruner.example_input)
    total, one_channel = sum(split), 1.0 / pruner.original_channels

    def modelled(sparsity: float) -> float:
        keep = 1.0 - sparsity
        return (split[0] + split[1] * keep + split[2] * keep * keep) / total

    low, high = 0.0, 0.99
    best = (0.0, 1.0)
    candidate = min(high, quadratic_estimate(*split, mac_target))
    for _ in range(iterations):
        pruner.step(candidate, scores=scores)
        ratio = measure(pruner.model, channels, image_size).macs / baseline
        if abs(ratio - mac_target) < abs(best[1] - mac_target):
            best = (candidate, ratio)
        low, high = (candidate, high) if ratio > mac_target else (low, candidate)
        if abs(ratio - mac_target) <= tolerance * mac_target or high - low < one_channel:
            break  # on target, or no cut lies between: one channel more or less jumps over it
        candidate = quadratic_estimate(*split, mac_target - (ratio - modelled(candidate)))
        if not low < candidate < high:
            candidate = (low + high) / 2
        pruner = make_pruner(copy.deepcopy(model))
    return best
