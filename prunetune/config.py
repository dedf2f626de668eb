"""The typed schema of a pruning job: YAML in, dotted overrides, plain dicts out and back.

Every section is a frozen pydantic model that forbids unknown keys, so a typo is an error
that names the field instead of a silently ignored setting. ``load_config`` is the edge:
it validates once and raises ``ConfigError`` listing each bad field path, the bad value and
what is allowed. Ray passes configs between processes as dicts: ``JobConfig.to_dict`` and
``JobConfig.from_dict`` round-trip losslessly.
"""

from __future__ import annotations

import hashlib
import json
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from prunetune import registry
from prunetune.errors import ConfigError, UnknownModelError, UnknownNameError, UserError
from prunetune.registry import Registry
from prunetune.user_yaml import DuplicateKeyError, UniqueKeyLoader, read_yaml, yaml_problem

Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
# NumPy's legacy seeding and scikit-learn's random_state take unsigned 32-bit seeds only.
SEED_MAX = 2**32 - 1


def registered(names: Registry) -> Any:
    """A name field checked against ``names`` when validated; the reference lists its entries."""

    def known(name: str) -> str:
        if name not in names:
            raise UnknownNameError(names.kind, name, names.names())
        return name

    return Annotated[str, AfterValidator(known), names]


def _known_model(name: str) -> str:
    # Looked up, never built; imported here because the model builders import torch.
    from prunetune.models import resolve

    resolve(name)
    return name


def _known_teacher(name: str) -> str:
    try:
        return _known_model(name)
    except UnknownModelError as error:
        raise UnknownModelError(str(error).replace("model.name: ", "recovery.teacher.name: ", 1)) from None


class Section(BaseModel):
    # No field can use inf or nan (a learning rate of inf trains to nan, ``1e400`` reads as inf).
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class DataConfig(Section):
    name: registered(registry.DATASETS) = Field("digits", description="a registered dataset")
    root: str | None = Field(None, description="local folder for cifar10/cifar100/imagefolder; never downloaded")
    image_size: int = Field(32, ge=8, le=1024, description="side of the square input images")
    channels: Literal[1, 3] = Field(3, description="image channels fed to the model")
    val_fraction: Fraction = Field(0.2, description="held-out share for datasets without an official val split")
    train_size: int | None = Field(None, ge=1, description="images in train (generated for shapes, a subset otherwise)")
    val_size: int | None = Field(None, ge=1, description="images in val (generated for shapes, a subset otherwise)")
    calibration_size: int = Field(512, ge=1, description="train images set aside, unaugmented, for statistics")
    batch_size: int = Field(128, ge=1, description="training batch size")
    eval_batch_size: int = Field(512, ge=1, description="batch size of evaluation and statistics passes")
    augment: bool = Field(True, description="random crop with padding and horizontal flip while training")
    crop_padding: int = Field(4, ge=0, description="padding of the random crop")
    hflip: bool = Field(True, description="flip horizontally when augmenting (off for digits-like data)")
    device_resident: Literal["auto", "always", "never"] = Field(
        "auto", description="keep in-memory datasets on the training device (auto: when they fit)"
    )
    num_workers: int = Field(2, ge=0, description="loader processes for file-backed datasets (imagefolder)")


class ModelConfig(Section):
    name: Annotated[str, AfterValidator(_known_model)] = Field(
        "mobilenet_v3_small",
        description="torchvision or timm model name (prefix 'torchvision:' or 'timm:' to choose), "
        "a prunetune model, or 'package.module:callable'",
    )
    num_classes: int | None = Field(None, ge=1, description="default: the dataset's class count")
    checkpoint: str | None = Field(None, description="local weights to start from")
    checkpoint_format: Literal["auto", "state_dict", "module"] = "auto"
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments to the builder")


class BaselineConfig(Section):
    epochs: int = Field(30, ge=0, description="0 evaluates model.checkpoint without training")
    optimizer: registered(registry.OPTIMIZERS) = Field("sgd", description="SGD uses Nesterov momentum")
    lr: float = Field(0.05, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(5e-4, ge=0.0)
    lr_schedule: registered(registry.LR_SCHEDULES) = "cosine"
    warmup_epochs: int = Field(1, ge=0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    recalibrate_bn: bool = Field(
        True, description="re-estimate BatchNorm statistics on the calibration split after training"
    )


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


class TeacherConfig(Section):
    """A trained model to distil from instead of the unpruned baseline; mirrors ``model``."""

    name: Annotated[str, AfterValidator(_known_teacher)] = Field(
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


class LatencyConfig(Section):
    """How latency is measured where it is used (objective accuracy_latency, mac_aware cost latency)."""

    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?)$", description="device the deployed model runs on")
    batch_size: int = Field(1, ge=1, description="images per timed forward")
    repeats: int = Field(20, ge=1, description="timed forwards after warm-up; the median is kept")


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
BASELINE_FIELDS = ("seed", "data", "model", "baseline")


class JobConfig(Section):
    name: str = Field("prunetune", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="name of the job / experiment")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="seeds data splits, initialisation, shuffling and the search")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    pruning: PruningConfig = Field(default_factory=PruningConfig)
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    stop: StopConfig = Field(default_factory=StopConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobConfig:
        return validate_config(data)

    def baseline_hash(self) -> str:
        """Hash of everything that decides the baseline model, so equal configs share one."""
        decisive = {k: self.to_dict()[k] for k in BASELINE_FIELDS}
        return hashlib.sha256(json.dumps(decisive, sort_keys=True).encode()).hexdigest()[:16]


def validate_config(data: Any) -> JobConfig:
    try:
        return JobConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError([_describe(e) for e in error.errors()]) from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> JobConfig:
    """Read YAML (or start from defaults), apply ``key.sub=value`` overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(Path(path))
    return validate_config(apply_overrides(raw, overrides))


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.c=value`` set; the value is parsed as YAML."""
    result = json.loads(json.dumps(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError([("", f"override {item!r} is not of the form key.sub=value")])
        *parents, leaf = key.strip().split(".")
        node = result
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError([(".".join(parents[: depth + 1]), f"is {child!r}, not a section; cannot set {key}")])
            node = child
        node[leaf] = _override_value(item, text)
    return result


def _override_value(item: str, text: str) -> Any:
    try:
        return yaml.load(text, Loader=UniqueKeyLoader) if text.strip() else None  # noqa: S506 - safe subclass
    except DuplicateKeyError as error:
        raise ConfigError([("", f"override {item!r} is not valid YAML{yaml_problem(error)}")]) from None
    except yaml.YAMLError:
        return text  # not YAML: the plain string, as a shell user means it


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    loc = tuple(error["loc"])
    path = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        return path, f"unknown field; allowed fields here: {', '.join(known)}"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error" and isinstance(error.get("ctx", {}).get("error"), UserError):
        # prunetune's own errors already name the bad value, and some the field too.
        return path, message.removeprefix(f"{path}: ")
    return path, f"{message} (got {error.get('input')!r})"


def section_of(annotation: Any) -> type[BaseModel] | None:
    """The section class of a field typed ``Section`` or ``Section | None``, else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: Any = JobConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or section_of(field.annotation) is None:
            return []
        model = section_of(field.annotation)
    return list(model.model_fields)
