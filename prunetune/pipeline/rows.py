"""One report row per pruning step, the running best, and the rows' Parquet file.

The *best feasible* step is the most pruned step whose accuracy is at or above the
threshold: fewest MACs (lowest measured latency when the search optimises latency), ties
to the higher accuracy. That is the model seed 001 keeps
by hand, and since every row carries it (``best_*``), the last row alone is the
trial's outcome.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd

from prunetune.io import write_atomic
from prunetune.models.complexity import Complexity

PHASES = ("stats", "scoring", "pruning", "repair", "training", "evaluation")


@dataclass
class StepRow:
    step: int
    target_sparsity: float
    sparsity: float
    masked: bool
    macs: int
    params: int
    mac_ratio: float
    param_ratio: float
    pre_accuracy: float
    accuracy: float
    best_epoch: int
    epochs_run: int
    lr: float
    threshold: float
    feasible: bool
    seconds: dict[str, float] = field(default_factory=dict)
    best_step: int | None = None
    best_accuracy: float = math.nan
    best_macs: int | None = None
    best_mac_ratio: float = math.nan
    is_best: bool = False
    baseline_accuracy: float = math.nan
    baseline_macs: int | None = None
    baseline_params: int | None = None
    peak_memory_mb: float = math.nan  # CUDA: peak allocated during the step (NaN on CPU)
    latency_ms: float = math.nan  # measured (latency section) when the search optimises latency
    best_latency_ms: float = math.nan

    @classmethod
    def make(cls, step: int, target: float, sparsity: float, masked: bool, complexity: Complexity, dense: Complexity,
             pre_accuracy: float, recovered, threshold: float, seconds: dict[str, float]) -> StepRow:
        return cls(step=step, target_sparsity=target, sparsity=sparsity, masked=masked, macs=complexity.macs,
                   params=complexity.params, mac_ratio=complexity.macs / dense.macs,
                   param_ratio=complexity.params / dense.params, pre_accuracy=pre_accuracy,
                   accuracy=recovered.accuracy, best_epoch=recovered.best_epoch, epochs_run=recovered.epochs_run,
                   lr=recovered.lr, threshold=threshold, feasible=recovered.accuracy >= threshold,
                   seconds={phase: seconds.get(phase, 0.0) for phase in PHASES})

    def to_dict(self) -> dict:
        flat = asdict(self)
        seconds = flat.pop("seconds")
        flat.update({f"seconds_{phase}": value for phase, value in seconds.items()})
        flat["seconds_total"] = sum(seconds.values())
        return flat


@dataclass
class RunResult:
    directory: Path
    baseline_accuracy: float
    threshold: float
    baseline_macs: int
    baseline_params: int
    rows: list[StepRow] = field(default_factory=list)
    cost: str = "macs"  # what "most pruned" means for the best feasible step: macs or latency_ms

    def add(self, row: StepRow) -> StepRow:
        row.baseline_accuracy, row.baseline_macs, row.baseline_params = (
            self.baseline_accuracy, self.baseline_macs, self.baseline_params)
        previous = self.rows[-1] if self.rows else None
        if previous is not None:
            row.best_step, row.best_accuracy = previous.best_step, previous.best_accuracy
            row.best_macs, row.best_mac_ratio = previous.best_macs, previous.best_mac_ratio
            row.best_latency_ms = previous.best_latency_ms
        if row.feasible and (previous is None or previous.best_step is None or self._better(row, previous)):
            row.best_step, row.best_accuracy, row.best_macs, row.best_mac_ratio = (
                row.step, row.accuracy, row.macs, row.mac_ratio)
            row.best_latency_ms = row.latency_ms
            row.is_best = True
        self.rows.append(row)
        return row

    def _better(self, row: StepRow, previous: StepRow) -> bool:
        """Cheaper than the best so far (MACs, or latency when it is the cost), ties to accuracy."""
        if self.cost == "latency_ms":
            return (row.latency_ms, -row.accuracy) < (previous.best_latency_ms, -previous.best_accuracy)
        return (row.macs, -row.accuracy) < (previous.best_macs, -previous.best_accuracy)

    @property
    def best(self) -> StepRow | None:
        return next((r for r in self.rows if r.is_best and r.step == self.rows[-1].best_step), None)


ROW_COLUMNS = (*(f.name for f in fields(StepRow) if f.name != "seconds"), *(f"seconds_{p}" for p in PHASES),
               "seconds_total")


def write_rows(path: Path, rows: list[StepRow]) -> None:
    frame = pd.DataFrame([row.to_dict() for row in rows])
    write_atomic(path, lambda target: frame.to_parquet(target, index=False))
