"""What every in-memory dataset's splits share (``in_memory_splits``), shown on digits."""

from prunetune.config import load_config
from prunetune.data import build_splits


def test_calibration_is_drawn_from_train_not_val():
    splits = build_splits(load_config(None, ["data.image_size=8"]).data, seed=0)
    train = {bytes(image.numpy()) for image in splits.train.images}
    val = {bytes(image.numpy()) for image in splits.val.images}
    calibration = [bytes(image.numpy()) for image in splits.calibration.images]
    assert all(image in train for image in calibration)
    assert sum(image in val for image in calibration) < len(calibration) // 20  # digits has a few duplicates



def test_train_and_val_size_caps():
    splits = build_splits(load_config(None, ["data.train_size=100", "data.val_size=50"]).data, seed=0)
    assert (len(splits.train), len(splits.val)) == (100, 50)
