"""The pruning section: scope, criterion, schedule, compensation, repair."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from prunetune import registry
from prunetune.config.base import Fraction, Section, registered

class MacAwareConfig(Section):
    # seed 003 1.3.4: score = base^alpha * cost^beta (multiplicative) or base + beta * cost (additive)
    base: registered(registry.CRITERIA) = Field("l1", description="the criterion it wraps (not mac_aware)")
    alpha: float = Field(1.0, ge=0.0)
    beta: float = 0.0
    mode: Literal["additive", "multiplicative"] = "multiplicative"
    cost: Literal["macs", "latency"] = Field(
        "macs", description="cost of a channel: MACs, or measured layer latency (the latency section's device/batch)")


class ScheduleConfig(Section):
    kind: registered(registry.SCHEDULES) = Field(
        "targets", description="how the sparsity steps are chosen"
    )
    targets: tuple[Fraction, ...] = Field((0.1, 0.2, 0.3), min_length=1,
                                          description="cumulative channel sparsities (targets)")
    final_sparsity: Fraction = Field(0.5, description="end point of linear / geometric / one_shot")
    steps: int = Field(5, ge=1, le=1000, description="number of steps of linear / geometric")
    mac_target: Fraction = Field(0.5, description="MACs to keep, as a fraction of the baseline (mac_target)")

    @model_validator(mode="after")
    def _targets_increase(self) -> ScheduleConfig:
        if any(b <= a for a, b in zip(self.targets, self.targets[1:])):
            raise ValueError(f"targets must increase strictly, got {list(self.targets)}")
        return self


class PruningConfig(Section):
    scope: registered(registry.SCOPES) = Field(
        "expand", description="expand: intermediate dimension only (seed 000 MLP-only); all: every prunable group"
    )
    include: tuple[str, ...] = Field((), description="module-name patterns added to the scope")
    exclude: tuple[str, ...] = Field((), description="module-name patterns removed from the scope")
    criterion: registered(registry.CRITERIA) = Field(
        "l1", description="channel importance criterion"
    )
    group_reduction: registered(registry.REDUCTIONS) = Field(
        "mean", description="how the member layers' scores of a group combine (l1, l2, bn_gamma, lamp, taylor)"
    )
    mac_aware: MacAwareConfig = Field(default_factory=MacAwareConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    round_to: int | None = Field(None, ge=1, description="keep channel counts multiples of this")
    max_layer_ratio: float = Field(0.9, gt=0.0, le=1.0, description="most of one group's channels pruned")
    compensation: bool = Field(False, description="fold pruned channels' means into the consumer (seed 003 1.5.1)")
    repair: registered(registry.REPAIRS) = Field(
        "bn", description="after each prune: nothing, BN recalibration, layer-wise or ASR (seed 004) scaling + BN"
    )
    asr_lambda: float = Field(
        1.0, ge=0.0, description="ASR shrinkage lambda as a multiple of each layer's median post-pruning channel variance"
    )
    recalibration_split: Literal["calibration", "val"] = Field(
        "calibration", description="data for BN recalibration (seed 001 suspected val hurt)"
    )
    recalibration_samples: int = Field(512, ge=1, description="images forwarded for BN recalibration")
    calibration_batches: int = Field(4, ge=1, description="batches of calibration data for statistics")
    mask_then_prune: bool = Field(False, description="zero channels at intermediate steps, remove them at the last")


