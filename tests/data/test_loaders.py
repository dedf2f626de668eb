import torch

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader, build_splits, make_loaders


def _ramp(count=10, size=8):
    images = torch.arange(count * 3 * size * size).reshape(count, 3, size, size) % 256
    return ImageTensors(images.to(torch.uint8), torch.arange(count))


def test_shuffled_epoch_visits_every_sample_once():
    loader = TensorLoader(_ramp(), 3, torch.device("cpu"), (0.0,) * 3, (1 / 255,) * 3, shuffle=True, seed=1)
    labels = torch.cat([labels for _, labels in loader])
    assert sorted(labels.tolist()) == list(range(10)) and len(loader) == 4


def test_crop_with_padding_shifts_images_and_keeps_their_shape():
    data = _ramp(count=64)
    loader = TensorLoader(data, 64, torch.device("cpu"), (0.0,) * 3, (1 / 255,) * 3, crop_padding=2, seed=0)
    images, labels = next(iter(loader))
    assert tuple(images.shape) == (64, 3, 8, 8)
    original = data.images[labels].float()
    shifted = (images != original).flatten(1).any(1)
    assert 0 < shifted.sum() < 64  # most crops move, the (2, 2) offset ones do not


def test_flip_mirrors_some_images_exactly():
    data = _ramp(count=64)
    loader = TensorLoader(data, 64, torch.device("cpu"), (0.0,) * 3, (1 / 255,) * 3, hflip=True, seed=0)
    images, labels = next(iter(loader))
    original = data.images[labels].float()
    flipped = (images == original.flip(3)).flatten(1).all(1)
    kept = (images == original).flatten(1).all(1)
    assert flipped.any() and kept.any() and bool((flipped | kept).all())


def test_augmentation_is_repeatable_for_a_seed():
    data = _ramp(count=32)
    make = lambda: TensorLoader(data, 8, torch.device("cpu"), (0.5,) * 3, (0.2,) * 3, shuffle=True,  # noqa: E731
                                crop_padding=2, hflip=True, seed=5)
    first = torch.cat([x for x, _ in make()])
    second = torch.cat([x for x, _ in make()])
    assert torch.equal(first, second)


def test_in_memory_loaders_normalise_with_train_statistics():
    config = load_config(None, ["data.augment=false"]).data
    splits = build_splits(config, 0)
    loaders = make_loaders(splits, config, torch.device("cpu"), seed=0)
    images = torch.cat([x for x, _ in loaders.train])
    assert abs(images.mean().item()) < 0.05 and abs(images.std().item() - 1) < 0.05
    assert len(loaders.val.labels) == len(splits.val)
