"""A run's report rows (``prunetune/step_row.py``), the running best in them, and their Parquet file.

The *best feasible* step is the most pruned step whose accuracy is at or above the
threshold: fewest effective MACs (equal to MACs without TKP; lowest measured latency when
the search optimises latency), ties to the higher accuracy. That is the model seed 001 keeps
by hand, and since every row carries it (``best_*``), the last row alone is the
trial's outcome.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from prunetune.io import write_atomic
from prunetune.step_row import PHASES, StepRow

__all__ = ["PHASES", "RunResult", "StepRow", "write_rows"]  # PHASES, StepRow re-exported for the pipeline's callers


@dataclass
class RunResult:
    directory: Path
    baseline_accuracy: float
    threshold: float
    baseline_macs: int
    baseline_params: int
    rows: list[StepRow] = field(default_factory=list)
    cost: str = "macs"  # what "most pruned" means for the best feasible step: macs or latency_ms
    baseline_latency_ms: float = math.nan  # timed when the cost is latency_ms

    def add(self, row: StepRow) -> StepRow:
        row.baseline_accuracy, row.baseline_macs, row.baseline_params = (
            self.baseline_accuracy, self.baseline_macs, self.baseline_params)
        row.baseline_latency_ms = self.baseline_latency_ms
        previous = self.rows[-1] if self.rows else None
        if previous is not None:
            row.best_step, row.best_accuracy = previous.best_step, previous.best_accuracy
            row.best_macs, row.best_mac_ratio = previous.best_macs, previous.best_mac_ratio
            row.best_latency_ms, row.best_effective_macs = previous.best_latency_ms, previous.best_effective_macs
        if row.feasible and (previous is None or previous.best_step is None or self._better(row, previous)):
            row.best_step, row.best_accuracy, row.best_macs, row.best_mac_ratio = (
                row.step, row.accuracy, row.macs, row.mac_ratio)
            row.best_latency_ms, row.best_effective_macs = row.latency_ms, row.effective_macs
            row.is_best = True
        self.rows.append(row)
        return row

    def _better(self, row: StepRow, previous: StepRow) -> bool:
        column = ranked_by(self.cost)
        return cheaper(getattr(row, column), row.accuracy,
                       getattr(previous, f"best_{column}"), previous.best_accuracy)

    @property
    def best(self) -> StepRow | None:
        return next((r for r in self.rows if r.is_best and r.step == self.rows[-1].best_step), None)


def ranked_by(cost: str) -> str:
    """The row column the best feasible step is chosen by: effective MACs (a channel-only step's are
    its MACs), or the latency when it is the cost."""
    return "latency_ms" if cost == "latency_ms" else "effective_macs"


def cheaper(cost: float, accuracy: float, best_cost: float, best_accuracy: float) -> bool:
    """A step better than the best so far: cheaper, ties to the higher accuracy."""
    return (cost, -accuracy) < (best_cost, -best_accuracy)


def write_rows(path: Path, rows: list[StepRow]) -> None:
    frame = pd.DataFrame([row.to_dict() for row in rows])
    write_atomic(path, lambda target: frame.to_parquet(target, index=False))
