"""The sections that decide the baseline model: data, model, baseline training."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from prunetune import registry
from prunetune.config.base import Fraction, Section, known_model, registered

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
    name: Annotated[str, AfterValidator(known_model)] = Field(
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


