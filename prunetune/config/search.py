"""How trials run and where results go: search, storage, runtime, latency measurement."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from prunetune import registry
from prunetune.config.base import SEED_MAX, Fraction, Section, registered
from prunetune.errors import FieldValueError

class LatencyConfig(Section):
    """How latency is measured where it is used (objective accuracy_latency, mac_aware cost latency)."""

    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="device the deployed model runs on")
    batch_size: int = Field(1, ge=1, description="images per timed forward")
    repeats: int = Field(20, ge=1, description="timed forwards after warm-up; the median is kept")


def _distinct_descending(levels: tuple[float, ...]) -> tuple[float, ...]:
    if len(set(levels)) != len(levels):
        raise ValueError("a level appears twice")
    return tuple(sorted(levels, reverse=True))


class RungsConfig(Section):
    """Cost rungs (search.scheduler: rungs): where trials are compared and how many go on (docs/search.md)."""

    levels: Annotated[tuple[Fraction, ...], AfterValidator(_distinct_descending)] = Field(
        (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3), min_length=1,
        description="cost ratios between 0 and 1 (the MAC ratio; the latency ratio with a latency "
        "objective) at which trials are compared")
    reduction_factor: float = Field(3.0, gt=1.0, description="eta: a trial goes on when it is in the top "
                                    "1/reduction_factor of the trials recorded at the rung")
    grace: int = Field(3, ge=1, description="trials recorded at a rung before it stops any")


class SearchConfig(Section):
    num_samples: int = Field(8, ge=1, description="trials to complete")
    sampler: registered(registry.SAMPLERS) = Field("tpe", description="Optuna sampler")
    sampler_seed: int | None = Field(None, ge=0, le=SEED_MAX, description="seed of the sampler (default: seed); "
                                     "changing it alone reruns a search without retraining the baseline")
    objectives: registered(registry.OBJECTIVES) = Field(
        "accuracy_macs", description="accuracy_macs / accuracy_latency: two objectives (Pareto); the others: one"
    )
    max_concurrent_trials: int = Field(2, ge=1)
    max_retries: int = Field(0, ge=0, description="times Ray re-runs a trial that raised before recording it failed")
    cpus_per_trial: float = Field(1.0, gt=0.0)
    gpus_per_trial: float = Field(0.0, ge=0.0, description="fractions share one GPU between trials")
    reuse_actors: bool = Field(True, description="run later trials in the worker processes of finished ones "
                               "(saves process start and imports per trial: half the wall time of a search of "
                               "short trials, bench/trial_overhead.py)")
    space: dict[str, Any] = Field(default_factory=dict, description="field path -> distribution")
    scheduler: registered(registry.SCHEDULERS) = Field(
        "fifo", description="fifo: every trial runs to its end; rungs: trials behind at a cost level stop early")
    rungs: RungsConfig = Field(default_factory=RungsConfig)

    @model_validator(mode="after")
    def _rungs_read(self) -> SearchConfig:
        default = RungsConfig()
        changed = [f"{name} is {value!r}" for name, value in self.rungs if value != getattr(default, name)]
        if changed and not getattr(registry.SCHEDULERS.get(self.scheduler), "reads_rungs", False):
            raise FieldValueError("rungs", f"{', '.join(changed)}, but search.scheduler {self.scheduler!r} does "
                                  "not read this section (it would change nothing); set search.scheduler: rungs, or "
                                  "leave search.rungs out")
        return self


class StorageConfig(Section):
    root: str = Field("runs", description="folder (or URI for searches) holding run directories")
    study_url: str | None = Field(None, description="SQLAlchemy URL of the Optuna study storage")
    step_models: Literal["feasible", "best"] = Field(
        "feasible", description="searches keep the model of every feasible step (any front point can be "
        "exported) or only each trial's best step (less disk)")


class RuntimeConfig(Section):
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="auto: bf16 on CUDA")
    channels_last: bool = Field(True, description="NHWC memory layout on CUDA")
    compile: bool = Field(False, description="torch.compile the model for training")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (default: torch's)")


# The fields that decide the baseline model: equal values share one baseline.
