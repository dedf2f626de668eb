"""Progress of long work in words: durations, a search's status and the views that show it.

A search's driver (``search/printer.py``) makes a line per step and per ended trial and a
``SearchStatus``: trials finished / running / failed of those requested, the best feasible
step so far, the time the driver has run trials and an estimate of the rest. A *view* shows
them: ``PrintedView`` prints the lines and, when a trial ends, the status line (a pipe, a
log file, the Python API); the CLI gives a terminal a live bar (``cli/progress.py``).
This module imports neither Ray nor Rich, so the CLI's light commands can use it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from prunetune.objectives import Objective


def clock(seconds: float) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass(frozen=True)
class SearchStatus:
    requested: int
    finished: int  # COMPLETE or PRUNED (no feasible step) in the study, earlier drivers' included
    running: int
    failed: int
    best: str | None  # the best feasible step so far, in words
    elapsed: float  # seconds since this driver started running trials
    remaining: float | None  # estimated seconds to the requested count; None until a trial finished here

    def describe(self) -> str:
        text = f"{self.finished}/{self.requested} trials finished, {self.running} running"
        text += f", {self.failed} failed" if self.failed else ""
        text += f" | best: {self.best}" if self.best else " | no feasible step yet"
        text += f" | {clock(self.elapsed)} elapsed"
        return text + (f", about {clock(self.remaining)} left" if self.remaining is not None else "")


class SearchView(Protocol):
    """Shows a search's lines and status; ``start``/``stop`` bracket the trials.

    ``status`` comes when a trial ends and, for a ``live`` view (a bar), also when one starts
    or reports a step.
    """

    live: bool

    def start(self) -> None: ...

    def line(self, text: str) -> None: ...

    def status(self, status: SearchStatus) -> None: ...

    def stop(self) -> None: ...


class PrintedView:
    """Plain lines: every step and trial, and the status line each time a trial ends."""

    live = False

    # Prints through the builtin looked up at call time: Ray may replace builtins.print.
    def start(self) -> None:
        pass

    def line(self, text: str) -> None:
        print(text, flush=True)

    def status(self, status: SearchStatus) -> None:
        print(f"search: {status.describe()}", flush=True)

    def stop(self) -> None:
        pass


def best_step(rows: Iterable[dict[str, Any]], objective: Objective) -> str | None:
    """The best feasible step among ``rows``, in words: the least costly one when the objective
    has a cost (MACs, which are effective MACs where a step has them, or latency), else the most
    accurate; ties go to the other measure."""
    feasible = [row for row in rows if row.get("feasible") and _finite(row.get("accuracy"))
                and _finite(row.get(objective.cost))]
    if not feasible:
        return None
    ranks_cost = any(goal.column in (objective.cost, f"effective_{objective.cost}") for goal in objective.goals)
    best = min(feasible, key=lambda row: (_cost(row, objective.cost), -row["accuracy"]) if ranks_cost
               else (-row["accuracy"], _cost(row, objective.cost)))
    if objective.cost == "latency_ms":
        cost = f"{best['latency_ms']:.2f} ms"
    else:
        effective = _effective(best, "mac_ratio")
        cost = f"{best['mac_ratio']:.1%} MACs" if effective == best["mac_ratio"] else f"{effective:.1%} eff. MACs"
    where = f"trial {int(best['trial'])} step {best['step']}" if _finite(best.get("trial")) else f"step {best['step']}"
    return f"{cost} at accuracy {best['accuracy']:.4f} ({where})" if ranks_cost else \
        f"accuracy {best['accuracy']:.4f} at {cost} ({where})"


def _cost(row: dict[str, Any], cost: str) -> float:
    return _effective(row, cost) if cost == "macs" else row[cost]


def _effective(row: dict[str, Any], column: str) -> float:
    """A step's effective ``column`` (TKP / N:M rows), its dense one where it has none."""
    value = row.get(f"effective_{column}")
    return value if _finite(value) else row[column]


def _finite(value: object) -> bool:
    # Rows read back from the store hold numpy scalars and NaN where a value was missing.
    return isinstance(value, numbers.Real) and math.isfinite(value)
