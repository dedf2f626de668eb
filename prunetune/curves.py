"""A trial's accuracy-vs-cost curve: the cost ratio of a step, and the area its feasible steps dominate.

A step's *cost ratio* is how much of the dense model's cost it keeps: its MAC ratio, or
with a latency cost (``accuracy_latency``) its measured latency over the baseline's,
timed in the same trial (``baseline_latency_ms`` in every row). The cost rungs
(``prunetune/rungs.py``) compare trials at cost ratios, and ``front_area``
(``prunetune/objectives.py``) is the hypervolume a trial's feasible steps dominate in
(accuracy, cost ratio) against (threshold, 1.0).

Rows are plain dicts (report rows, ``step_row.py``). This module imports NumPy only (and
Optuna's WFG hypervolume, lazily, through ``internals``): the search, its trainables and
``results/`` all use it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from prunetune.internals import hypervolume as wfg_hypervolume

COST_RATIO = {"macs": "MAC ratio", "latency_ms": "latency ratio"}  # what a cost ratio is called, by cost column


def number(value: object) -> float | None:
    """A float, or None for a missing or NaN value."""
    if value is None or isinstance(value, bool):
        return None
    value = float(value)  # type: ignore[arg-type]
    return None if math.isnan(value) else value


def cost_ratio(row: dict, cost: str) -> float | None:
    """The step's cost over the dense model's: MAC ratio, or latency over the baseline's latency."""
    if cost == "macs":
        return number(row.get("mac_ratio"))
    if cost == "latency_ms":
        latency, baseline = number(row.get("latency_ms")), number(row.get("baseline_latency_ms"))
        return latency / baseline if latency is not None and baseline else None
    raise ValueError(f"cost {cost!r}; allowed: {', '.join(COST_RATIO)}")


def dominated_hypervolume(points: np.ndarray, reference: Sequence[float]) -> float:
    """The hypervolume ``points`` (every column minimised) dominate up to ``reference``.

    Points not strictly better than the reference in every column add nothing (a step at
    the threshold, or at the dense model's cost, encloses no area).
    """
    reference = np.asarray(reference, dtype=float)
    points = np.asarray(points, dtype=float).reshape(-1, len(reference))
    points = points[np.all(points < reference, axis=1)]
    return wfg_hypervolume(points, reference) if len(points) else 0.0


def front_area(rows: Iterable[dict], cost: str) -> float | None:
    """The area a trial's feasible steps dominate in (accuracy up, cost ratio down) against
    (its threshold, 1.0); None while it has no feasible step."""
    points, threshold = [], None
    for row in rows:
        accuracy, ratio = number(row.get("accuracy")), cost_ratio(row, cost)
        if row.get("feasible") and accuracy is not None and ratio is not None:
            points.append((-accuracy, ratio))
            threshold = number(row.get("threshold"))
    if not points or threshold is None:
        return None
    return dominated_hypervolume(np.array(points), (-threshold, 1.0))
