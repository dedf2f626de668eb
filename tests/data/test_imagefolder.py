import numpy as np
import pytest
import torch
from PIL import Image

from prunetune.config import load_config
from prunetune.data import build_splits, make_loaders
from prunetune.errors import DataError


@pytest.fixture
def image_tree(tmp_path):
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 3)):
        for label in ("person", "no_person"):
            folder = tmp_path / split / label
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{index}.png")
    return tmp_path


def test_imagefolder_loads_train_val_and_calibration_at_configured_size(image_tree):
    config = load_config(None, ["data.name=imagefolder", f"data.root={image_tree}", "data.image_size=24",
                                "data.calibration_size=4", "data.batch_size=4", "data.num_workers=0"]).data
    splits = build_splits(config, 0)
    assert (len(splits.train), len(splits.val), len(splits.calibration)) == (12, 6, 4)
    assert splits.num_classes == 2
    assert splits.class_names == ("no_person", "person")  # the class folders, in ImageFolder's label order
    loaders = make_loaders(splits, config, torch.device("cpu"), seed=0)
    images, labels = next(iter(loaders.train))
    assert tuple(images.shape) == (4, 3, 24, 24) and labels.dtype == torch.long
    val_images, _ = next(iter(loaders.val))
    assert tuple(val_images.shape[1:]) == (3, 24, 24)


def test_imagefolder_without_val_tree_is_a_data_error(image_tree):
    import shutil

    shutil.rmtree(image_tree / "val")
    with pytest.raises(DataError, match="has no val/ folder"):
        build_splits(load_config(None, ["data.name=imagefolder", f"data.root={image_tree}"]).data, 0)


def test_imagefolder_missing_root_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="data.root: .* does not exist"):
        build_splits(load_config(None, ["data.name=imagefolder", f"data.root={tmp_path / 'absent'}"]).data, 0)
