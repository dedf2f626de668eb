"""CIFAR-10 / CIFAR-100 read from a local copy in the official python-pickle layout.

``data.root`` is either the extracted folder (``cifar-10-batches-py`` / ``cifar-100-python``)
or its parent. Nothing is ever downloaded: a missing folder or file is a ``DataError``. Class
names come from the layout's meta file (``batches.meta`` / ``meta``); without it the classes
are named by their numbers.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from prunetune.data.registry import DATASETS, honours, ImageTensors, Splits, in_memory_splits, resize_images
from prunetune.errors import DataError

LAYOUTS = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100),
}
META = {"cifar10": ("batches.meta", b"label_names"), "cifar100": ("meta", b"fine_label_names")}


def _find_root(name: str, root: str | None) -> Path:
    folder = LAYOUTS[name][0]
    if root is None:
        raise DataError(f"data.root: dataset {name!r} needs a local folder (the extracted {folder}); none given")
    path = Path(root).expanduser()
    for candidate in (path, path / folder):
        if (candidate / LAYOUTS[name][1][0]).is_file():
            return candidate
    raise DataError(
        f"data.root: {root!r} holds no {name} in the python-pickle layout "
        f"(expected {folder}/{LAYOUTS[name][1][0]} or {LAYOUTS[name][1][0]} there); prunetune never downloads"
    )


def _read_batches(folder: Path, files: list[str], label_key: bytes) -> ImageTensors:
    images, labels = [], []
    for file in files:
        path = folder / file
        if not path.is_file():
            raise DataError(f"data.root: {str(folder)!r} lacks {file!r}")
        try:
            with path.open("rb") as handle:
                batch = pickle.load(handle, encoding="bytes")
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch[label_key])
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as error:
            raise DataError(f"data.root: {str(path)!r} is not a CIFAR pickle batch ({error})") from None
    return ImageTensors(torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long))


def _cifar(name: str, config, seed: int) -> Splits:
    folder = _find_root(name, config.root)
    _, train_files, test_files, label_key, num_classes = LAYOUTS[name]
    train = _read_batches(folder, train_files, label_key)
    val = _read_batches(folder, test_files, label_key)
    train, val = (
        ImageTensors(resize_images(split.images, config.image_size, config.channels), split.labels)
        for split in (train, val)
    )
    return in_memory_splits(train, val, config, seed, num_classes=num_classes,
                            class_names=_class_names(name, folder, num_classes))


def _class_names(name: str, folder: Path, num_classes: int) -> tuple[str, ...]:
    file, key = META[name]
    path = folder / file
    if not path.is_file():
        return ()  # Splits names them "0", "1", ...
    try:
        with path.open("rb") as handle:
            names = pickle.load(handle, encoding="bytes")[key]
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as error:
        raise DataError(f"data.root: {str(path)!r} is not a CIFAR meta file ({type(error).__name__}: {error})") from None
    if len(names) != num_classes:
        raise DataError(f"data.root: {str(path)!r} names {len(names)} classes, {name} has {num_classes}")
    return names


@DATASETS.register("cifar10")
@honours("crop_padding")  # the in-memory loader's padded random crop
def cifar10(config, seed: int) -> Splits:
    """CIFAR-10 from its python pickles under data.root (never downloaded)."""
    return _cifar("cifar10", config, seed)


@DATASETS.register("cifar100")
@honours("crop_padding")  # the in-memory loader's padded random crop
def cifar100(config, seed: int) -> Splits:
    """CIFAR-100 from its python pickles under data.root (never downloaded)."""
    return _cifar("cifar100", config, seed)
