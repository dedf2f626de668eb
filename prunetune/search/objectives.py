"""What a search optimises, and with which Optuna sampler.

Every report row carries the trial's *best feasible* step (``best_accuracy``,
``best_macs``: see ``pipeline/rows.py``), so the objective values a trial ends with are
those of a step that met the accuracy threshold. A trial with no feasible step has no
objective values and is told to Optuna as PRUNED: it can never reach the study's best
trials, whatever its last (infeasible) step measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna


@dataclass(frozen=True)
class Objective:
    metrics: tuple[str, ...]  # keys of the reported metrics
    modes: tuple[str, ...]  # "max" / "min" for each
    labels: tuple[str, ...]  # Optuna metric names shown by the study


OBJECTIVES = {
    "accuracy_macs": Objective(("objective_accuracy", "objective_macs"), ("max", "min"), ("accuracy", "macs")),
    "accuracy_latency": Objective(("objective_accuracy", "objective_latency"), ("max", "min"),
                                  ("accuracy", "latency_ms")),
    "min_macs": Objective(("objective_macs",), ("min",), ("macs",)),
    "max_accuracy": Objective(("objective_accuracy",), ("max",), ("accuracy",)),
}


def objective_metrics(row: dict) -> dict:
    """The objective values of a report row: its best feasible step, or None without one."""
    accuracy, macs = row.get("best_accuracy"), row.get("best_macs")
    feasible = accuracy is not None and macs is not None and not math.isnan(accuracy)
    latency = row.get("best_latency_ms")
    timed = feasible and latency is not None and not math.isnan(latency)
    return {"objective_accuracy": float(accuracy) if feasible else None,
            "objective_macs": float(macs) if feasible else None,
            "objective_latency": float(latency) if timed else None}


def make_sampler(name: str, seed: int, multi_objective: bool) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=4)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8 if multi_objective else 4)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}; known: gp, nsga2, random, tpe")
