"""Sparsity schedules, one registry: each turns a ``ScheduleConfig`` into cumulative targets.

Targets are channel sparsities of the scope, counted from the original channel count
(seed 001). ``linear`` divides the final sparsity p equally (p t / N); ``geometric``
keeps the same fraction q = r^(1/N) of the *current* channels each step, r = 1 - p
(seed 003 1.2.1); ``one_shot`` is one step to p; ``targets`` is an explicit list.
``mac_target`` first solves for the channel sparsity whose pruned model keeps
``mac_target`` of the MACs (``solve_mac_target``), then steps to it geometrically.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

from prunetune.models.complexity import measure
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
    """Seed 003 2.2: mac_target = (U + S1 q + S2 q^2) / T, solved for the keep ratio q; returns 1 - q."""
    total = unpruned + one_sided + two_sided
    a, b, c = two_sided, one_sided, unpruned - mac_target * total
    if a == 0:
        q = -c / b if b else 1.0
    else:
        q = (-b + (b * b - 4 * a * c) ** 0.5) / (2 * a)
    return float(min(1.0, max(0.0, 1.0 - q)))


def solve_mac_target(make_pruner: Callable[[nn.Module], object], model: nn.Module, channels: int, image_size: int,
                     mac_target: float, tolerance: float = 0.01, iterations: int = 20,
                     stats: dict | None = None) -> tuple[float, float]:
    """Channel sparsity whose one-shot cut keeps ``mac_target`` of the MACs, on the real counter.

    Bisection over the sparsity on copies of the model (MACs fall as sparsity rises);
    stops within ``tolerance`` (relative) of the target MACs. ``stats`` (the dense model's
    calibration statistics) serve criteria that need them. Returns (sparsity, MAC ratio).
    """
    baseline = measure(model, channels, image_size).macs

    def ratio_at(sparsity: float) -> float:
        trial = copy.deepcopy(model)
        make_pruner(trial).step(sparsity, stats=stats)
        return measure(trial, channels, image_size).macs / baseline

    low, high = 0.0, 0.99
    best = (0.0, 1.0)
    for _ in range(iterations):
        middle = (low + high) / 2
        ratio = ratio_at(middle)
        if abs(ratio - mac_target) < abs(best[1] - mac_target):
            best = (middle, ratio)
        if abs(ratio - mac_target) <= tolerance * mac_target:
            break
        low, high = (middle, high) if ratio > mac_target else (low, middle)
    return best
