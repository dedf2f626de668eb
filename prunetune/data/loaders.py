"""Batches for training and evaluation.

``TensorLoader`` serves an in-memory split from one device (the GPU when it fits): the
uint8 images stay there, and shuffling, random crop with padding, flipping and
normalisation happen there per batch, with no worker processes and no host copies.
File-backed splits go through a ``DataLoader``. ``make_loaders`` picks per split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch.utils.data import DataLoader

from prunetune.data.preprocessing import CROP_PADDING
from prunetune.data.registry import ImageTensors, Splits

# Share of free device memory an in-memory dataset may take under device_resident=auto.
RESIDENT_SHARE = 0.25


class TensorLoader:
    """Iterate ``(images, labels)`` batches of an ``ImageTensors`` split on ``device``."""

    def __init__(
        self,
        data: ImageTensors,
        batch_size: int,
        device: torch.device,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        shuffle: bool = False,
        crop_padding: int = 0,
        hflip: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        self.images = data.images.to(device)
        self.labels = data.labels.to(device)
        self.batch_size = batch_size
        self.device = device
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1) * 255.0
        self.shuffle, self.crop_padding, self.hflip, self.drop_last = shuffle, crop_padding, hflip, drop_last
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def __len__(self) -> int:
        count = len(self.labels)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

    @property
    def dataset_size(self) -> int:
        return len(self.labels)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        count = len(self.labels)
        order = (
            torch.randperm(count, device=self.device, generator=self.generator)
            if self.shuffle
            else torch.arange(count, device=self.device)
        )
        for batch in range(len(self)):
            index = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            images = self.images[index]
            if self.crop_padding:
                images = self._random_crop(images)
            images = images.float()
            if self.hflip:
                flip = torch.rand(len(index), device=self.device, generator=self.generator) < 0.5
                images = torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)
            images = ((images - self.mean) / self.std).contiguous(memory_format=self.memory_format)
            yield images, self.labels[index]

    def _random_crop(self, images: torch.Tensor) -> torch.Tensor:
        pad, (count, channels, height, width) = self.crop_padding, images.shape
        padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
        offsets = torch.randint(0, 2 * pad + 1, (2, count), device=self.device, generator=self.generator)
        rows = (offsets[0, :, None] + torch.arange(height, device=self.device))[:, None, :, None]
        cols = (offsets[1, :, None] + torch.arange(width, device=self.device))[:, None, None, :]
        batch = torch.arange(count, device=self.device).view(-1, 1, 1, 1)
        channel = torch.arange(channels, device=self.device).view(1, -1, 1, 1)
        return padded[batch, channel, rows, cols]


@dataclass(frozen=True)
class Loaders:
    train: TensorLoader | DataLoader
    val: TensorLoader | DataLoader
    calibration: TensorLoader | DataLoader


def _resident_device(splits: Splits, device: torch.device, policy: str) -> torch.device:
    if policy == "never" or device.type != "cuda":
        return torch.device("cpu") if policy == "never" else device
    if policy == "always":
        return device
    size = sum(s.images.numel() for s in (splits.train, splits.val, splits.calibration))
    free, _ = torch.cuda.mem_get_info(device)
    return device if size <= RESIDENT_SHARE * free else torch.device("cpu")


def make_loaders(splits: Splits, config, device: torch.device, seed: int, channels_last: bool = False) -> Loaders:
    """Loaders for the three splits under ``config`` (a ``DataConfig``)."""
    if not splits.in_memory:
        return _file_loaders(splits, config, device, seed)
    home = _resident_device(splits, device, config.device_resident)
    common = dict(device=home, mean=splits.mean, std=splits.std, channels_last=channels_last)
    augment = config.augment
    return Loaders(
        train=TensorLoader(
            splits.train,
            config.batch_size,
            shuffle=True,
            crop_padding=(CROP_PADDING if config.crop_padding is None else config.crop_padding) if augment else 0,
            hflip=augment and config.hflip,
            drop_last=len(splits.train) > config.batch_size,
            seed=seed,
            **common,
        ),
        val=TensorLoader(splits.val, config.eval_batch_size, **common),
        calibration=TensorLoader(splits.calibration, config.eval_batch_size, **common),
    )


def _file_loaders(splits: Splits, config, device: torch.device, seed: int) -> Loaders:
    generator = torch.Generator().manual_seed(seed)
    common = dict(num_workers=config.num_workers, pin_memory=device.type == "cuda",
                  persistent_workers=config.num_workers > 0)
    return Loaders(
        train=DataLoader(splits.train, config.batch_size, shuffle=True, drop_last=True, generator=generator, **common),
        val=DataLoader(splits.val, config.eval_batch_size, **common),
        calibration=DataLoader(splits.calibration, config.eval_batch_size, **common),
    )
