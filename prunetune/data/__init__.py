"""Datasets (a registry of train / val / calibration splits) and their loaders."""

from prunetune.data import cifar, digits, imagefolder, shapes  # noqa: F401  (fill the registry)
from prunetune.data.loaders import Loaders, TensorLoader, make_loaders
from prunetune.data.registry import DATASETS, ImageTensors, Splits, build_splits

__all__ = ["DATASETS", "ImageTensors", "Loaders", "Splits", "TensorLoader", "build_splits", "make_loaders"]
