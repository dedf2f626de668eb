"""``root/train/<class>/*.jpg`` and ``root/val/<class>/*.jpg`` trees (VWW, ImageNet, ...).

Served from disk by a ``DataLoader`` with workers. The transforms (``preprocessing.py``):
by default a random resized crop and flip for train, resize to size/0.875 then centre crop
for val and calibration, ImageNet normalisation; each part set by a ``data`` field, or all
of it by the user's own ``data.transform``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Subset
from torchvision import datasets

from prunetune.data.preprocessing import check_output, file_transforms
from prunetune.data.registry import DATASETS, Splits, honours
from prunetune.errors import DataError


def _tree(root: Path, split: str, transform) -> datasets.ImageFolder:
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"data.root: {str(root)!r} has no {split}/ folder (expected {split}/<class>/<image>)")
    try:
        return datasets.ImageFolder(str(folder), transform=transform)
    except (FileNotFoundError, RuntimeError) as error:
        raise DataError(f"data.root: {str(folder)!r} is not an image tree: {error}") from None


@DATASETS.register("imagefolder")
@honours("crop_scale", "eval_crop_fraction", "transform")
def imagefolder(config, seed: int) -> Splits:
    """data.root/train/<class>/*.jpg and data.root/val/<class>/*.jpg trees (VWW, an ImageNet subset, ...)."""
    if config.root is None:
        raise DataError("data.root: dataset 'imagefolder' needs a folder with train/ and val/; none given")
    root = Path(config.root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root: {config.root!r} does not exist")
    train_transform, eval_transform, described = file_transforms(config)
    train = _tree(root, "train", train_transform)
    val = _tree(root, "val", eval_transform)
    plain_train = datasets.ImageFolder(str(root / "train"), transform=eval_transform)
    if train.classes != val.classes:
        raise DataError(f"data.root: train/ and val/ of {config.root!r} have different class folders")
    if config.transform is not None and len(val):
        check_output(val[0][0], config, f"{val.samples[0][0]} (train=False)")
        check_output(train[0][0], config, f"{train.samples[0][0]} (train={config.augment})")
    generator = torch.Generator().manual_seed(seed)
    # Drawn first, from the full train: the calibration size never changes the train subset.
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
        image_size=config.image_size,
        mean=described.mean or (),  # None with data.transform: the user's transform normalises
        std=described.std or (),
        preprocessing=described,
        class_names=tuple(train.classes),  # the class folders, sorted: ImageFolder's label order
    )
