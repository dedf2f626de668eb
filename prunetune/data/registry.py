"""The dataset registry and what every dataset gives: train / val / calibration splits.

A dataset is a function ``(config: DataConfig, seed: int) -> Splits`` decorated with
``@DATASETS.register(name)``. In-memory datasets return ``ImageTensors`` (uint8 NCHW), which
the device-resident loader serves without worker processes; file-backed ones return torch
``Dataset`` objects served by a ``DataLoader``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from prunetune.data.preprocessing import EvalPreprocessing, tensor_preprocessing
from prunetune.registry import DATASETS


@dataclass(frozen=True)
class ImageTensors:
    """Images as uint8 ``[N, C, H, W]`` with int64 labels ``[N]``, kept whole in memory."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 NCHW, got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor) -> ImageTensors:
        return ImageTensors(self.images[index].contiguous(), self.labels[index].contiguous())

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std in [0, 1] units, for normalisation."""
        pixels = self.images.transpose(0, 1).reshape(self.images.shape[1], -1).float() / 255.0
        return tuple(pixels.mean(1).tolist()), tuple(pixels.std(1).clamp_min(1e-3).tolist())


Split = ImageTensors | Dataset


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    calibration: Split
    num_classes: int
    channels: int
    image_size: int
    # Normalisation the loaders apply to in-memory splits (file-backed ones normalise in
    # their transforms).
    mean: tuple[float, ...]
    std: tuple[float, ...]
    # What val and calibration images go through, as plain data; None: a plugin dataset's own.
    preprocessing: EvalPreprocessing | None = None
    # The name of each class index (what a deployed model's argmax means); default "0", "1", ...
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.class_names:
            object.__setattr__(self, "class_names", tuple(str(index) for index in range(self.num_classes)))
        if len(self.class_names) != self.num_classes:
            raise ValueError(f"{self.num_classes} classes but {len(self.class_names)} class names")

    @property
    def in_memory(self) -> bool:
        return all(isinstance(s, ImageTensors) for s in (self.train, self.val, self.calibration))


DatasetBuilder = Callable[..., Splits]


def honours(*fields: str) -> Callable[[DatasetBuilder], DatasetBuilder]:
    """Declare the dataset-specific ``DataConfig`` fields (``DATASET_SPECIFIC``) a builder
    applies; the config refuses the others when they are set, naming the field."""

    def mark(builder: DatasetBuilder) -> DatasetBuilder:
        builder.honours = fields
        return builder

    return mark


def build_splits(config, seed: int) -> Splits:
    """Build the splits of ``config.name`` (a ``DataConfig``), deterministic in ``seed``."""
    return DATASETS.get(config.name, field="data.name")(config, seed)


def in_memory_splits(
    train: ImageTensors, val: ImageTensors, config, seed: int, num_classes: int,
    class_names: tuple[str, ...] = (),
) -> Splits:
    """Apply the size caps, draw the calibration subset from train and compute the norm.

    Train is capped first and val next, calibration last from the same stream: the
    calibration size never changes which images are in train or val. ``class_names``: each
    label's name (default: the label's number as text).
    """
    generator = torch.Generator().manual_seed(seed)
    if config.train_size is not None and config.train_size < len(train):
        train = train.subset(torch.randperm(len(train), generator=generator)[: config.train_size])
    if config.val_size is not None and config.val_size < len(val):
        val = val.subset(torch.randperm(len(val), generator=generator)[: config.val_size])
    calibration_count = min(config.calibration_size, len(train))
    calibration = train.subset(torch.randperm(len(train), generator=generator)[:calibration_count])
    mean, std = train.channel_stats()
    described = tensor_preprocessing(config, mean, std)
    return Splits(
        train=train,
        val=val,
        calibration=calibration,
        num_classes=num_classes,
        channels=train.images.shape[1],
        image_size=train.images.shape[-1],
        mean=described.mean,
        std=described.std,
        preprocessing=described,
        class_names=tuple(class_names),
    )


def resize_images(images: torch.Tensor, size: int, channels: int) -> torch.Tensor:
    """Resize uint8 NCHW images to ``size`` (bilinear, antialiased) and to ``channels``."""
    if images.shape[1] != channels:
        if channels == 1:
            weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        else:
            images = images.expand(-1, channels, -1, -1)
    if images.shape[-1] != size or images.shape[-2] != size:
        resized = torch.nn.functional.interpolate(
            images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        images = resized.round().clamp(0, 255).to(torch.uint8)
    return images.contiguous()
