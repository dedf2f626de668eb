import torch

from prunetune.config import load_config
from prunetune.data import build_splits


def test_digits_split_sizes_and_image_shape():
    splits = build_splits(load_config(None, ["data.image_size=24", "data.calibration_size=100"]).data, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.calibration)) == (1437, 360, 100)
    assert tuple(splits.train.images.shape[1:]) == (3, 24, 24)
    assert splits.num_classes == 10 and set(splits.val.labels.tolist()) == set(range(10))
    assert splits.class_names == tuple("0123456789")


def test_digits_single_channel():
    splits = build_splits(load_config(None, ["data.channels=1"]).data, seed=0)
    assert splits.train.images.shape[1] == 1 and len(splits.mean) == 1


def test_digits_split_is_fixed_by_seed():
    config = load_config(None).data
    first, again, other = build_splits(config, 0), build_splits(config, 0), build_splits(config, 1)
    assert torch.equal(first.val.images, again.val.images)
    assert torch.equal(first.calibration.labels, again.calibration.labels)
    assert not torch.equal(first.val.images, other.val.images)
