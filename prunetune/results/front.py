"""Pareto fronts over pruning steps, budget queries, hypervolume, and front comparison.

Every (trial, step) row is a candidate model, so fronts are taken over rows, not over
trials' final values. Conventions, chosen so a user never gets a model they cannot ship:

- ``feasible_only`` (the default) drops rows below their trial's accuracy threshold.
- Rows with NaN in an objective are never on a front (a step that did not evaluate).
- Ties: rows with identical objective values do not dominate each other, so all of them
  stay on the front (different settings that reach the same point are all answers).
- Budget queries break ties the way the pipeline's "best feasible" does: at equal
  accuracy fewer MACs wins, at equal MACs higher accuracy wins.

Hypervolume uses Optuna's WFG implementation, the one its multi-objective samplers rely
on (a private API: ``prunetune/internals.py`` wraps it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from prunetune.curves import dominated_hypervolume
from prunetune.errors import UserError

DEFAULT_OBJECTIVES: Mapping[str, str] = {"accuracy": "max", "macs": "min"}


def _check(df: pd.DataFrame, objectives: Mapping[str, str]) -> None:
    for column, mode in objectives.items():
        if column not in df.columns:
            raise UserError(f"objective {column!r} is not a results column (have: {', '.join(sorted(df.columns))})")
        if mode not in ("min", "max"):
            raise UserError(f"objective {column!r}: mode {mode!r} is not 'min' or 'max'")


def _signed(df: pd.DataFrame, objectives: Mapping[str, str]) -> np.ndarray:
    """Objective values turned into 'smaller is better' columns."""
    values = df[list(objectives)].to_numpy(dtype=float)
    return values * np.array([-1.0 if mode == "max" else 1.0 for mode in objectives.values()])


def _candidates(df: pd.DataFrame, objectives: Mapping[str, str], feasible_only: bool) -> pd.DataFrame:
    _check(df, objectives)
    rows = df[df["feasible"].astype(bool)] if feasible_only and "feasible" in df.columns else df
    return rows.dropna(subset=list(objectives))


def dominated_by(points: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Mask of ``points`` some row of ``others`` dominates (all <=, one <), for minimised columns."""
    if len(others) == 0:
        return np.zeros(len(points), dtype=bool)
    return np.array([bool((np.all(others <= p, axis=1) & np.any(others < p, axis=1)).any()) for p in points],
                    dtype=bool)


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, str] = DEFAULT_OBJECTIVES,
                 feasible_only: bool = True) -> pd.DataFrame:
    """The non-dominated rows, sorted by the first objective's cost (best last objective first)."""
    rows = _candidates(df, objectives, feasible_only)
    if rows.empty:
        return rows
    values = _signed(rows, objectives)
    front = rows[~dominated_by(values, values)]
    last = list(objectives)[-1]
    return front.sort_values(last, ascending=objectives[last] == "min", kind="stable")


def best_within_macs(df: pd.DataFrame, max_macs: float, feasible_only: bool = True) -> pd.Series | None:
    """The most accurate row with MACs <= ``max_macs`` (ties: fewer MACs); None when none fits."""
    rows = _candidates(df, DEFAULT_OBJECTIVES, feasible_only)
    rows = rows[rows["macs"] <= max_macs]
    if rows.empty:
        return None
    return rows.sort_values(["accuracy", "macs"], ascending=[False, True], kind="stable").iloc[0]


def cheapest_above(df: pd.DataFrame, min_accuracy: float, feasible_only: bool = True) -> pd.Series | None:
    """The row with the fewest MACs and accuracy >= ``min_accuracy`` (ties: higher accuracy)."""
    rows = _candidates(df, DEFAULT_OBJECTIVES, feasible_only)
    rows = rows[rows["accuracy"] >= min_accuracy]
    if rows.empty:
        return None
    return rows.sort_values(["macs", "accuracy"], ascending=[True, False], kind="stable").iloc[0]


def hypervolume(df: pd.DataFrame, reference: Mapping[str, float],
                objectives: Mapping[str, str] | None = None, feasible_only: bool = True) -> float:
    """Hypervolume of ``df``'s front against ``reference`` (one value per objective column).

    ``objectives`` defaults to accuracy (max) and mac_ratio (min), which compares searches
    on different baselines; rows not strictly better than the reference in every objective
    add nothing.
    """
    objectives = dict(objectives or {"accuracy": "max", "mac_ratio": "min"})
    if set(reference) != set(objectives):
        raise UserError(f"hypervolume reference {dict(reference)} must give exactly the objectives {list(objectives)}")
    front = pareto_front(df, objectives, feasible_only)
    if front.empty:
        return 0.0
    ref = _signed(pd.DataFrame([reference])[list(objectives)], objectives)[0]
    return dominated_hypervolume(_signed(front, objectives), ref)


@dataclass(frozen=True)
class FrontComparison:
    """Two experiments' fronts side by side."""

    hypervolume: dict[str, float]
    dominated_share: dict[str, float]  # name -> share of its front points the other front dominates
    union_front: pd.DataFrame  # the joint front, with an ``experiment`` column saying whose point it is


def compare_fronts(fronts: Mapping[str, pd.DataFrame], reference: Mapping[str, float],
                   objectives: Mapping[str, str] | None = None) -> FrontComparison:
    """Hypervolume of each experiment's front, how much of each the other dominates, the joint front."""
    if len(fronts) != 2:
        raise UserError(f"compare_fronts takes two experiments, got {len(fronts)}")
    objectives = dict(objectives or {"accuracy": "max", "mac_ratio": "min"})
    own = {name: pareto_front(df, objectives) for name, df in fronts.items()}
    (a, front_a), (b, front_b) = own.items()
    shares = {a: _dominated_share(front_a, front_b, objectives), b: _dominated_share(front_b, front_a, objectives)}
    union = pd.concat([front.assign(experiment=name) for name, front in own.items()], ignore_index=True)
    return FrontComparison({name: hypervolume(df, reference, objectives) for name, df in fronts.items()},
                           shares, pareto_front(union, objectives, feasible_only=False))


def _dominated_share(front: pd.DataFrame, other: pd.DataFrame, objectives: Mapping[str, str]) -> float:
    if front.empty:
        return float("nan")
    return float(dominated_by(_signed(front, objectives), _signed(other, objectives)).mean())
