import torch

from prunetune.config import load_config
from prunetune.data import build_splits
from prunetune.data.shapes import CLASSES, generate


def test_shapes_default_is_cifar_sized_with_ten_classes():
    splits = build_splits(load_config(None, ["data.name=shapes", "data.train_size=500", "data.val_size=100"]).data, 0)
    assert tuple(splits.train.images.shape) == (500, 3, 32, 32)
    assert splits.num_classes == len(CLASSES) == 10
    assert splits.class_names == ("circle", "ring", "square", "frame", "triangle", "plus", "star", "crescent", "bar",
                                  "hexagon")
    assert set(splits.train.labels.tolist()) == set(range(10))


def test_shapes_are_deterministic_by_seed_and_any_size():
    first, again, other = generate(64, 48, seed=3), generate(64, 48, seed=3), generate(64, 48, seed=4)
    assert tuple(first.images.shape) == (64, 3, 48, 48)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)


def test_shapes_train_and_val_share_no_image():
    splits = build_splits(load_config(None, ["data.name=shapes", "data.train_size=300", "data.val_size=300"]).data, 0)
    train = {bytes(image.numpy()) for image in splits.train.images}
    assert not any(bytes(image.numpy()) in train for image in splits.val.images)


def test_shapes_images_vary_in_colour_and_content():
    images = generate(200, 32, seed=0).images.float()
    assert images.std(0).mean() > 40  # not one template with noise
    assert images.mean((1, 2, 3)).std() > 10  # backgrounds of many brightnesses
