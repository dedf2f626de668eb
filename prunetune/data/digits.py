"""scikit-learn's digits: 1,797 real 8x8 handwritten digits shipped with the package.

The embedded default: no file or download is needed. Pixels (0..16) are scaled to uint8,
resized to ``image_size`` and repeated to ``channels``; the train / val split is stratified
and fixed by the seed.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from prunetune.data.registry import DATASETS, honours, ImageTensors, Splits, in_memory_splits, resize_images


@DATASETS.register("digits")
@honours("crop_padding")  # the in-memory loader's padded random crop
def digits(config, seed: int) -> Splits:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), embedded: the default."""
    bunch = load_digits()
    images = torch.from_numpy(bunch.images * (255.0 / 16.0)).round().to(torch.uint8).unsqueeze(1)
    images = resize_images(images, config.image_size, config.channels)
    labels = torch.from_numpy(bunch.target).long()
    train_index, val_index = train_test_split(
        torch.arange(len(labels)).numpy(),
        test_size=config.val_fraction,
        random_state=seed,
        stratify=labels.numpy(),
    )
    train = ImageTensors(images[train_index], labels[train_index])
    val = ImageTensors(images[val_index], labels[val_index])
    return in_memory_splits(train, val, config, seed, num_classes=10,
                            class_names=tuple(str(digit) for digit in bunch.target_names))
