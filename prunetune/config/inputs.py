"""The sections that decide the baseline model: data, model, baseline training."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from prunetune import registry
from prunetune.config.base import Fraction, Section, known_model, registered
from prunetune.errors import FieldValueError

# DataConfig fields that only some datasets apply. A dataset builder lists those it applies in
# its ``honours`` attribute (``prunetune.data.registry.honours``); set for any other, they are
# refused: a field shown by ``prunetune config`` either acts or is an error.
DATASET_SPECIFIC = {
    "crop_padding": "the padded random crop of in-memory images",
    "crop_scale": "the random resized crop of image files",
    "eval_crop_fraction": "the resize-then-centre-crop of image files",
    "transform": "a transform of image files",
}
# What only the training batches see (an untrained baseline, baseline.epochs 0, ignores it).
TRAINING_ONLY_DATA = ("batch_size", "augment", "crop_padding", "crop_scale", "hflip")
# How batches are served, never which pixels a model sees: no part of the baseline's key.
SERVING_ONLY_DATA = ("num_workers", "eval_batch_size", "device_resident")
# The baseline fields an untrained baseline (epochs 0) depends on; the rest is its training recipe.
UNTRAINED_BASELINE = ("epochs", "recalibrate_bn")


class DataConfig(Section):
    name: registered(registry.DATASETS) = Field("digits", description="a registered dataset")
    root: str | None = Field(None, description="local folder for cifar10/cifar100/imagefolder; never downloaded")
    image_size: int = Field(32, ge=8, le=1024, description="side of the square input images")
    channels: Literal[1, 3] = Field(3, description="image channels fed to the model")
    val_fraction: Fraction = Field(0.2, description="held-out share for datasets without an official val split")
    train_size: int | None = Field(None, ge=1, description="images in train (generated for shapes, a subset otherwise)")
    val_size: int | None = Field(None, ge=1, description="images in val (generated for shapes, a subset otherwise)")
    calibration_size: int = Field(512, ge=1, description="train images set aside, unaugmented (as val is "
                                  "preprocessed), for statistics and BN recalibration")
    batch_size: int = Field(128, ge=1, description="training batch size")
    eval_batch_size: int = Field(512, ge=1, description="batch size of evaluation and statistics passes")
    augment: bool = Field(True, description="augment training images: a random crop (crop_padding for in-memory "
                          "datasets, crop_scale for imagefolder) and, with hflip, a horizontal flip; false: train "
                          "images are preprocessed as val")
    crop_padding: int | None = Field(None, ge=0, description="digits, shapes, cifar10/100: pad by this many pixels "
                                     "and crop back at a random offset when augmenting (null: 4); imagefolder "
                                     "refuses it (its random crop is crop_scale)")
    crop_scale: tuple[float, float] | None = Field(
        None, description="imagefolder: area range [low, high] of the random resized crop when augmenting "
        "(torchvision's RandomResizedCrop, aspect ratio 3/4 to 4/3; null: [0.08, 1.0], the ImageNet recipe)")
    hflip: bool = Field(True, description="flip horizontally at random when augmenting (off for digits-like data)")
    eval_crop_fraction: float | None = Field(
        None, gt=0.0, le=1.0, description="imagefolder: val and calibration images (and train ones without "
        "augment) are resized, shorter side to image_size / this (bilinear), then centre-cropped to image_size "
        "(null: 0.875, torchvision's 256 -> 224; 1.0: no margin)")
    mean: tuple[float, ...] | None = Field(
        None, description="per-channel mean subtracted from pixels in [0, 1], one value per channel (null: "
        "imagefolder ImageNet's (0.485, 0.456, 0.406), grey 0.449; in-memory datasets: their train split's)")
    std: tuple[float, ...] | None = Field(
        None, description="per-channel std pixels are divided by after the mean (null: imagefolder ImageNet's "
        "(0.229, 0.224, 0.225), grey 0.226; in-memory datasets: their train split's)")
    transform: str | None = Field(
        None, description="imagefolder: 'package.module:callable' called as callable(train=True/False), returning "
        "the transform of a PIL RGB image to a normalised float tensor [channels, image_size, image_size]; "
        "replaces crop_scale, eval_crop_fraction, mean, std and hflip (train=True feeds training when augment is on)")
    device_resident: Literal["auto", "always", "never"] = Field(
        "auto", description="keep in-memory datasets on the training device (auto: when they fit)"
    )
    num_workers: int = Field(2, ge=0, description="loader processes for file-backed datasets (imagefolder)")

    @model_validator(mode="after")
    def _preprocessing_that_acts(self) -> DataConfig:
        _check_values(self)
        _check_dataset_uses(self)
        replaced = [f for f in ("crop_scale", "eval_crop_fraction", "mean", "std") if getattr(self, f) is not None]
        if self.transform is not None and (replaced or not self.hflip):
            field = (replaced or ["hflip"])[0]
            raise FieldValueError(field, f"{_shown(getattr(self, field))} is not used: data.transform "
                                  f"{self.transform!r} builds the whole preprocessing; remove one of them")
        return self


def _check_values(data: DataConfig) -> None:
    for field in ("mean", "std"):
        values = getattr(data, field)
        if values is not None and len(values) != data.channels:
            raise FieldValueError(field, f"has {len(values)} values for {data.channels} channels (data.channels): "
                                  "give one per channel")
    if data.std is not None and min(data.std) <= 0:
        raise FieldValueError("std", f"{_shown(data.std)} has a value <= 0; every std must be > 0")
    scale = data.crop_scale
    if scale is not None and not 0 < scale[0] <= scale[1] <= 1:
        raise FieldValueError("crop_scale", f"{_shown(scale)} is not [low, high] with 0 < low <= high <= 1")
    module, sep, name = data.transform.partition(":") if data.transform is not None else ("", ":", "")
    if data.transform is not None and not (sep and module and name):
        raise FieldValueError("transform", f"{data.transform!r} is not of the form 'package.module:callable'")


def _check_dataset_uses(data: DataConfig) -> None:
    """Refuse a set field the dataset does not apply (``DATASET_SPECIFIC``), or that acts on
    a random crop when there is none."""
    honoured = getattr(registry.DATASETS.get(data.name), "honours", ())
    for field, what in DATASET_SPECIFIC.items():
        value = getattr(data, field)
        if value is not None and field not in honoured:
            users = [name for name in registry.DATASETS.names()
                     if field in getattr(registry.DATASETS.get(name), "honours", ())]
            raise FieldValueError(field, f"{_shown(value)} is not used by dataset {data.name!r}: it sets {what}, "
                                  f"which {', '.join(users) or 'no dataset'} applies; remove it")
    for field in ("crop_padding", "crop_scale"):
        if not data.augment and getattr(data, field) is not None:
            raise FieldValueError(field, f"{_shown(getattr(data, field))} is not used: data.augment is false "
                                  "(no random crop); remove it or set augment true")


def _shown(value: Any) -> str:
    return json.dumps(list(value) if isinstance(value, tuple) else value)


class ModelConfig(Section):
    name: Annotated[str, AfterValidator(known_model)] = Field(
        "mobilenet_v3_small",
        description="torchvision or timm model name (prefix 'torchvision:' or 'timm:' to choose), "
        "a prunetune model, or 'package.module:callable'",
    )
    num_classes: int | None = Field(None, ge=1, description="default: the dataset's class count")
    checkpoint: str | None = Field(None, description="local weights to start from; the baseline is keyed on the "
                                   "file's content, so an overwritten file is measured again and a moved one is not")
    checkpoint_format: Literal["auto", "state_dict", "module"] = "auto"
    kwargs: dict[str, Any] = Field(default_factory=dict, description="extra keyword arguments to the builder")


class BaselineConfig(Section):
    epochs: int = Field(30, ge=0, description="0 evaluates model.checkpoint without training (with recalibrate_bn)")
    optimizer: registered(registry.OPTIMIZERS) = Field("sgd", description="SGD uses Nesterov momentum")
    lr: float = Field(0.05, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(5e-4, ge=0.0)
    lr_schedule: registered(registry.LR_SCHEDULES) = "cosine"
    warmup_epochs: int = Field(1, ge=0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    recalibrate_bn: bool = Field(
        True, description="re-estimate BatchNorm statistics on the calibration split before the baseline is "
        "measured (after every training epoch, and for a loaded checkpoint with epochs 0): the baseline accuracy, "
        "threshold, teacher and every pruned step start from them; false: the model's own statistics are final "
        "(both accuracies are reported either way)"
    )


