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
from prunetune.registry import Registry

SCHEDULES: Registry[Callable[..., list[float]]] = Registry("schedule", home="prunetune.pruning.schedules")


@SCHEDULES.register("targets")
def explicit_targets(config, final_sparsity: float | None = None) -> list[float]:
    return list(config.targets)


@SCHEDULES.register("linear")
def linear(config, final_sparsity: float | None = None) -> list[float]:
    final = final_sparsity if final_sparsity is not None else config.final_sparsity
    return [final * step / config.steps for step in range(1, config.steps + 1)]


@SCHEDULES.register("geometric")
def geometric(config, final_sparsity: float | None = None) -> list[float]:
    final = final_sparsity if final_sparsity is not None else config.final_sparsity
    keep_per_step = (1.0 - final) ** (1.0 / config.steps)
    return [1.0 - keep_per_step**step for step in range(1, config.steps + 1)]


@SCHEDULES.register("one_shot")
def one_shot(config, final_sparsity: float | None = None) -> list[float]:
    return [final_sparsity if final_sparsity is not None else config.final_sparsity]


@SCHEDULES.register("mac_target")
def mac_target(config, final_sparsity: float | None = None) -> list[float]:
    if final_sparsity is None:
        raise ValueError("mac_target needs the solved sparsity: call solve_mac_target first")
    return geometric(config, final_sparsity)


def schedule_targets(config, final_sparsity: float | None = None) -> list[float]:
    """Cumulative target sparsities of a ``ScheduleConfig``."""
    return SCHEDULES.get(config.kind, field="pruning.schedule.kind")(config, final_sparsity)


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
