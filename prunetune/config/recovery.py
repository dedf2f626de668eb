"""What happens after each cut: recovery (distillation, lr, patience, teacher) and the stop rule."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from prunetune import registry
from prunetune.config.base import Fraction, Section, known_teacher, registered

class TeacherConfig(Section):
    """A trained model to distil from instead of the unpruned baseline; mirrors ``model``."""

    name: Annotated[str, AfterValidator(known_teacher)] = Field(
        description="the teacher's model (as model.name), built for the student's classes; the whole "
        "recovery.teacher section is null by default: distil from the unpruned baseline")
    checkpoint: str = Field(description="the teacher's trained weights (required: an untrained teacher teaches noise)")
    checkpoint_format: Literal["auto", "state_dict", "module"] = "auto"
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments to the builder")

    @model_validator(mode="after")
    def _student_classes(self) -> TeacherConfig:
        taken = sorted({"num_classes", "in_channels"} & set(self.kwargs))
        if taken:
            raise ValueError(f"kwargs may not set {', '.join(taken)}: the teacher sees the student's input and "
                             "must output the student's classes")
        return self


class RecoveryConfig(Section):
    epochs: int = Field(10, ge=0, description="most recovery epochs per step")
    patience: int | None = Field(3, ge=1, description="epochs without val improvement before stopping")
    optimizer: registered(registry.OPTIMIZERS) = Field("adamw", description="recovery optimizer (rebuilt after every prune)")
    lr: float = Field(1e-4, gt=0.0, description="learning rate below lr_high_threshold")
    lr_high: float | None = Field(None, gt=0.0, description="learning rate at or above lr_high_threshold")
    lr_high_threshold: Fraction | None = Field(None, description="target sparsity from which lr_high is used")
    weight_decay: float = Field(0.0, ge=0.0)
    lr_schedule: registered(registry.LR_SCHEDULES) = Field("constant", description="per-step learning-rate schedule")
    warmup_epochs: int = Field(0, ge=0, description="linear warm-up epochs at the start of each step")
    recalibrate_bn: bool = Field(True, description="re-estimate BatchNorm statistics (pruning.recalibration_split) "
                                 "after every recovery epoch, before it is evaluated")
    kd_alpha: float = Field(0.5, ge=0.0, le=1.0, description="weight of the distillation term")
    kd_temperature: float = Field(4.0, gt=0.0, description="distillation temperature T")
    variance_entropy_lambda: float = Field(0.0, ge=0.0, description="weight of the variance-entropy loss (seed 003 1.4)")
    sparse_pretrain_epochs: int = Field(0, ge=0, description="L2,1 sparse training before the first step")
    sparse_lambda: float = Field(1e-4, ge=0.0, description="weight of the L2,1 group penalty")
    teacher: TeacherConfig | None = Field(None, description="distil from this trained model; null: from the "
                                          "unpruned baseline")
    final_epochs: int = Field(0, ge=0, description="seed 003 phase 3: fine-tuning epochs after the last step, of "
                              "the last feasible step's model, reported as one more row (0: off)")
    final_lr: float | None = Field(None, gt=0.0, description="learning rate of the final fine-tuning "
                                   "(default: the last feasible step's)")

    @model_validator(mode="after")
    def _lr_high_pair(self) -> RecoveryConfig:
        if (self.lr_high is None) != (self.lr_high_threshold is None):
            raise ValueError("lr_high and lr_high_threshold are set together or not at all")
        return self

    @model_validator(mode="after")
    def _settings_that_act(self) -> RecoveryConfig:
        if self.teacher is not None and self.kd_alpha == 0.0:
            raise ValueError("teacher is set but kd_alpha is 0, so nothing distils from it: set kd_alpha > 0 or "
                             "remove teacher")
        if self.final_lr is not None and self.final_epochs == 0:
            raise ValueError(f"final_lr {self.final_lr:g} is set but final_epochs is 0 (no final fine-tuning): "
                             "set final_epochs >= 1 or remove final_lr")
        return self


class StopConfig(Section):
    max_accuracy_drop: float | None = Field(
        0.01, ge=0.0, le=1.0, description="threshold = baseline accuracy minus this (absolute)"
    )
    min_accuracy: float | None = Field(
        None, ge=0.0, le=1.0, description="absolute accuracy threshold (replaces the default drop when set)"
    )

    @model_validator(mode="before")
    @classmethod
    def _absolute_replaces_the_default_drop(cls, data: Any) -> Any:
        # Setting min_accuracy alone means "use it": the default drop must not clash with it.
        if isinstance(data, dict) and data.get("min_accuracy") is not None and "max_accuracy_drop" not in data:
            return {**data, "max_accuracy_drop": None}
        return data

    @model_validator(mode="after")
    def _one_threshold(self) -> StopConfig:
        if self.max_accuracy_drop is not None and self.min_accuracy is not None:
            raise ValueError("set max_accuracy_drop or min_accuracy, not both")
        return self


