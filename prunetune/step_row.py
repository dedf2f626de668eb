"""One report row per pruning step: the fields the pipeline fills, the columns everyone reads.

The pipeline makes the rows (``pipeline/rows.py`` keeps the running best in them); the
trainable reports them, and the results store names its columns after them. This module
imports nothing heavy (no torch, pandas or Ray), so ``results/`` can read the column
names without loading the pipeline.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    baseline_latency_ms: float = math.nan  # the dense model's, timed in the same run: the latency ratio's base
    phase: str = "prune"  # "final": seed 003's phase 3, fine-tuning the last feasible step's model (no cut)

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


ROW_COLUMNS = (*(f.name for f in fields(StepRow) if f.name != "seconds"), *(f"seconds_{p}" for p in PHASES),
               "seconds_total")
