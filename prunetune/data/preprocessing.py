"""How images become model inputs: the evaluation preprocessing as plain data, and the
transforms of image files built from the job's ``data`` settings.

``EvalPreprocessing`` is the one description of what happens to an image before the model
sees it at evaluation (val and calibration get exactly this). Every built-in dataset puts
it on its ``Splits`` (``splits.preprocessing``), the baseline records it in
``baseline.json``, and the image-file transforms are built from it, so the description and
what the loaders do cannot drift apart.

Image files (``imagefolder``) by default: torchvision's ImageNet recipe. Train:
``RandomResizedCrop(image_size, scale=crop_scale)`` (default area 0.08..1, aspect 3/4..4/3)
and a random horizontal flip (``hflip``); val and calibration: the shorter side resized to
``image_size / eval_crop_fraction`` (default 0.875: 256 -> 224), centre crop ``image_size``.
Both: to grey first when ``channels`` is 1, pixels to [0, 1], ``(x - mean) / std`` with
ImageNet's mean and std unless ``data.mean`` / ``data.std`` are set. ``data.transform``
replaces all of it with the user's own callable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torchvision import transforms

from prunetune.errors import DataError
from prunetune.registry import import_callable

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GREY_MEAN, GREY_STD = (0.449,), (0.226,)  # ImageNet's, averaged over the channels
CROP_SCALE = (0.08, 1.0)  # torchvision's RandomResizedCrop default (the ImageNet recipe)
EVAL_CROP_FRACTION = 0.875  # torchvision's ImageNet evaluation: resize 256, centre crop 224
CROP_PADDING = 4  # the CIFAR recipe's padded random crop, for in-memory datasets

Transform = Callable[[Any], torch.Tensor]


@dataclass(frozen=True)
class EvalPreprocessing:
    """What must happen to an image before the model sees it, as plain data.

    In order: decode to RGB; to ``channels`` (1: ITU-R 601-2 luma, PIL's "L"); resize,
    bilinear and antialiased (``resize_mode`` "shorter_side": the shorter side to ``resize``
    pixels, aspect kept; "square": to ``resize`` x ``resize``); centre-crop to ``crop`` x
    ``crop`` when set; pixels to floats in [0, 1]; per channel ``(x - mean) / std``. The
    result is ``channels`` x ``image_size`` x ``image_size``. With ``transform`` (the user's
    ``data.transform``) that callable does all of it and the other steps are None.
    """

    image_size: int
    channels: int
    resize: int | None
    resize_mode: Literal["shorter_side", "square"] | None
    crop: int | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    interpolation: str | None = "bilinear"
    transform: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def tensor_preprocessing(config, mean: tuple[float, ...], std: tuple[float, ...]) -> EvalPreprocessing:
    """In-memory datasets: images resized to a square ``image_size`` once, then normalised by
    ``data.mean`` / ``data.std`` or the given train-split statistics."""
    return EvalPreprocessing(config.image_size, config.channels, config.image_size, "square", None,
                             tuple(config.mean or mean), tuple(config.std or std))


def file_preprocessing(config) -> EvalPreprocessing:
    """Image files: resize the shorter side, centre crop, normalise (module docstring)."""
    size = config.image_size
    if config.transform is not None:
        return EvalPreprocessing(size, config.channels, None, None, None, None, None, None, config.transform)
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if config.channels == 3 else (GREY_MEAN, GREY_STD)
    fraction = config.eval_crop_fraction or EVAL_CROP_FRACTION
    return EvalPreprocessing(size, config.channels, round(size / fraction), "shorter_side", size,
                             tuple(config.mean or mean), tuple(config.std or std))


def file_transforms(config) -> tuple[Transform, Transform, EvalPreprocessing]:
    """(train transform, eval transform, the eval one described) for image files under ``config``."""
    described = file_preprocessing(config)
    if config.transform is not None:
        build = import_callable(config.transform, "data.transform", DataError)
        evaluate = _user_transform(build, False, config.transform)
        return (_user_transform(build, True, config.transform) if config.augment else evaluate), evaluate, described
    evaluate = to_torchvision(described)
    if not config.augment:
        return evaluate, evaluate, described
    crop = [transforms.RandomResizedCrop(config.image_size, scale=tuple(config.crop_scale or CROP_SCALE))]
    flip = [transforms.RandomHorizontalFlip()] if config.hflip else []
    return _compose(described, crop + flip), evaluate, described


def to_torchvision(described: EvalPreprocessing) -> transforms.Compose:
    """The torchvision transform of PIL images that ``described`` (no user transform) says."""
    size = described.resize if described.resize_mode == "shorter_side" else (described.resize, described.resize)
    resize = [transforms.Resize(size, interpolation=transforms.InterpolationMode.BILINEAR, antialias=True)]
    return _compose(described, resize + ([transforms.CenterCrop(described.crop)] if described.crop else []))


def _compose(described: EvalPreprocessing, geometry: list) -> transforms.Compose:
    grey = [transforms.Grayscale(1)] if described.channels == 1 else []
    return transforms.Compose(grey + geometry + [transforms.ToTensor(), transforms.Normalize(described.mean,
                                                                                            described.std)])


def _user_transform(build: Callable[..., Any], train: bool, spec: str) -> Transform:
    try:
        made = build(train=train)
    except TypeError as error:
        raise DataError(f"data.transform: {spec}(train={train}) failed: {error}; it must take the keyword "
                        "argument train and return a transform") from None
    if not callable(made):
        raise DataError(f"data.transform: {spec}(train={train}) returned {type(made).__name__}, not a transform")
    return made


def check_output(image: Any, config, source: str) -> None:
    """A ``DataError`` naming ``data.transform`` unless one transformed image is a float tensor
    of ``channels`` x ``image_size`` x ``image_size``."""
    expected = (config.channels, config.image_size, config.image_size)
    if isinstance(image, torch.Tensor) and image.is_floating_point() and tuple(image.shape) == expected:
        return
    got = (f"a {image.dtype} tensor {tuple(image.shape)}" if isinstance(image, torch.Tensor)
           else f"a {type(image).__name__}")
    raise DataError(f"data.transform: {config.transform!r} gives {got} for {source}; expected a float tensor "
                    f"{expected} (data.channels, data.image_size)")
