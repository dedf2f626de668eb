"""``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg`` trees (VWW, ImageNet, ...).

Served from disk by a ``DataLoader`` with workers; the usual transforms: random resized
crop and flip for train, resize to size/0.875 then centre crop for val and calibration,
ImageNet normalisation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Subset
from torchvision import datasets, transforms

from prunetune.data.registry import DATASETS, Splits
from prunetune.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_RESIZE_RATIO = 0.875  # evaluation resizes the shorter side to size / 0.875, then centre-crops size


def _tree(root: Path, split: str, transform) -> datasets.ImageFolder:
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"data.root: {str(root)!r} has no {split}/ folder (expected {split}/<class>/<image>)")
    try:
        return datasets.ImageFolder(str(folder), transform=transform)
    except (FileNotFoundError, RuntimeError) as error:
        raise DataError(f"data.root: {str(folder)!r} is not an image tree: {error}") from None


@DATASETS.register("imagefolder")
def imagefolder(config, seed: int) -> Splits:
    """data.root/train/<class>/*.jpg and data.root/val/<class>/*.jpg trees (VWW, an ImageNet subset, ...)."""
    if config.root is None:
        raise DataError("data.root: dataset 'imagefolder' needs a folder with train/ and val/; none given")
    root = Path(config.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root: {config.root!r} does not exist")
    size = config.image_size
    gray = [transforms.Grayscale(1)] if config.channels == 1 else []
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if config.channels == 3 else ((0.449,), (0.226,))
    finish = [transforms.ToTensor(), transforms.Normalize(mean, std)]
    evaluate = [transforms.Resize(int(round(size / EVAL_RESIZE_RATIO))), transforms.CenterCrop(size)]
    augment = [transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip()] if config.augment else evaluate
    train = _tree(root, "train", transforms.Compose(gray + augment + finish))
    val = _tree(root, "val", transforms.Compose(gray + evaluate + finish))
    plain_train = datasets.ImageFolder(str(root / "train"), transform=transforms.Compose(gray + evaluate + finish))
    if train.classes != val.classes:
        raise DataError(f"data.root: train/ and val/ of {config.root!r} have different class folders")
    generator = torch.Generator().manual_seed(seed)
    calibration_index = torch.randperm(len(train), generator=generator)[: config.calibration_size]
    train_split = train
    if config.train_size is not None and config.train_size < len(train):
        train_split = Subset(train, torch.randperm(len(train), generator=generator)[: config.train_size].tolist())
    val_split = val
    if config.val_size is not None and config.val_size < len(val):
        val_split = Subset(val, torch.randperm(len(val), generator=generator)[: config.val_size].tolist())
    return Splits(
        train=train_split,
        val=val_split,
        calibration=Subset(plain_train, calibration_index.tolist()),
        num_classes=len(train.classes),
        channels=config.channels,
        image_size=size,
        mean=mean,
        std=std,
        class_names=tuple(train.classes),  # the class folders, sorted: ImageFolder's label order
    )
