"""``shapes``: a procedurally generated 10-class image set, CIFAR-sized by default.

Each image holds one shape (circle, ring, square, frame, triangle, plus, star, crescent,
bar, hexagon) of random colour, position, scale and rotation (within +-30 degrees, so no
two classes become rotations of each other), drawn over a random gradient background with
clutter (lines and blobs behind the shape) and pixel noise. Some images have little
contrast and some shapes are small, so a small CNN learns the set well above chance but
does not saturate it in a few epochs. Generation is vectorised in torch and fixed by the
seed: the same (seed, size, count) always gives the same pixels.
"""

from __future__ import annotations

import math

import torch

from prunetune.data.registry import DATASETS, honours, ImageTensors, Splits, in_memory_splits, resize_images

CLASSES = ("circle", "ring", "square", "frame", "triangle", "plus", "star", "crescent", "bar", "hexagon")
DEFAULT_TRAIN, DEFAULT_VAL = 20000, 4000
CHUNK = 2048


def _inside(kind: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Membership of unit-scale shape ``kind`` at shape coordinates (u, v)."""
    radius = torch.sqrt(u * u + v * v)
    if kind == 0:
        return radius <= 1.0
    if kind == 1:
        return (radius <= 1.0) & (radius >= 0.6)
    if kind == 2:
        return torch.maximum(u.abs(), v.abs()) <= 0.8
    if kind == 3:
        box = torch.maximum(u.abs(), v.abs())
        return (box <= 0.9) & (box >= 0.55)
    if kind == 4:
        normals = [(math.cos(a), math.sin(a)) for a in (math.pi / 2, 7 * math.pi / 6, 11 * math.pi / 6)]
        return torch.stack([-(nx * u + ny * v) <= 0.5 for nx, ny in normals]).all(0)
    if kind == 5:
        return ((u.abs() <= 0.28) & (v.abs() <= 0.95)) | ((v.abs() <= 0.28) & (u.abs() <= 0.95))
    if kind == 6:
        angle = torch.atan2(v, u)
        return radius <= 0.45 + 0.55 * (torch.cos(5 * angle) + 1) / 2
    if kind == 7:
        return (radius <= 1.0) & (torch.sqrt((u - 0.5) ** 2 + v**2) >= 0.75)
    if kind == 8:
        return (u.abs() <= 1.0) & (v.abs() <= 0.25)
    directions = [(math.cos(a), math.sin(a)) for a in (0.0, math.pi / 3, 2 * math.pi / 3)]
    return torch.stack([(dx * u + dy * v).abs() <= 0.85 for dx, dy in directions]).all(0)


def _uniform(generator: torch.Generator, shape, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def _render(labels: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Float images [N, 3, size, size] in [0, 1] for the given labels."""
    count = len(labels)
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    x, y = x.expand(count, size, size), y.expand(count, size, size)

    # Background: a random colour with a random linear gradient.
    base = _uniform(generator, (count, 3, 1, 1), 0.0, 1.0)
    slope = _uniform(generator, (count, 3, 2), -0.35, 0.35)
    image = base + slope[..., 0, None, None] * (x[:, None] - 0.5) + slope[..., 1, None, None] * (y[:, None] - 0.5)

    # Clutter behind the shape: thin lines and small blobs of random colours.
    for _ in range(3):
        colour = _uniform(generator, (count, 3, 1, 1), 0.0, 1.0)
        px, py = _uniform(generator, (count, 1, 1), 0.0, 1.0), _uniform(generator, (count, 1, 1), 0.0, 1.0)
        angle = _uniform(generator, (count, 1, 1), 0.0, math.pi)
        distance = ((x - px) * torch.sin(angle) - (y - py) * torch.cos(angle)).abs()
        line = (distance <= 0.02) & (torch.rand((count, 1, 1), generator=generator) < 0.7)
        bx, by = _uniform(generator, (count, 1, 1), 0.0, 1.0), _uniform(generator, (count, 1, 1), 0.0, 1.0)
        blob_radius = _uniform(generator, (count, 1, 1), 0.03, 0.09)
        blob = ((x - bx) ** 2 + (y - by) ** 2 <= blob_radius**2) & (torch.rand((count, 1, 1), generator=generator) < 0.7)
        image = torch.where((line | blob)[:, None], colour, image)

    # The shape: centre, scale and rotation, then membership per class.
    centre_x, centre_y = _uniform(generator, (count, 1, 1), 0.3, 0.7), _uniform(generator, (count, 1, 1), 0.3, 0.7)
    scale = _uniform(generator, (count, 1, 1), 0.12, 0.3)
    rotation = _uniform(generator, (count, 1, 1), -math.pi / 6, math.pi / 6)
    dx, dy = (x - centre_x) / scale, (y - centre_y) / scale
    u = dx * torch.cos(rotation) + dy * torch.sin(rotation)
    v = -dx * torch.sin(rotation) + dy * torch.cos(rotation)
    mask = torch.zeros(count, size, size, dtype=torch.bool)
    for kind in range(len(CLASSES)):
        rows = labels == kind
        if rows.any():
            mask[rows] = _inside(kind, u[rows], v[rows])
    # Foreground colour: a random shift away from the background, small for some images.
    contrast = _uniform(generator, (count, 1, 1, 1), 0.15, 0.8)
    direction = torch.nn.functional.normalize(torch.randn((count, 3, 1, 1), generator=generator), dim=1)
    foreground = (base + contrast * direction * math.sqrt(3)).clamp(0, 1)
    image = torch.where(mask[:, None], foreground, image)

    noise = _uniform(generator, (count, 1, 1, 1), 0.02, 0.12)
    image = image + noise * torch.randn(image.shape, generator=generator)
    return image.clamp(0, 1)


def generate(count: int, size: int, seed: int) -> ImageTensors:
    """``count`` balanced-in-expectation images of side ``size``, fixed by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(len(CLASSES), (count,), generator=generator)
    chunks = [
        (_render(labels[start : start + CHUNK], size, generator) * 255).round().to(torch.uint8)
        for start in range(0, count, CHUNK)
    ]
    return ImageTensors(torch.cat(chunks), labels)


@DATASETS.register("shapes")
@honours("crop_padding")  # the in-memory loader's padded random crop
def shapes(config, seed: int) -> Splits:
    """Procedural coloured shapes on textured backgrounds (CIFAR-sized benchmark data, any size)."""
    # Train and val come from different generator streams, so no image is in both.
    train = generate(config.train_size or DEFAULT_TRAIN, config.image_size, seed * 2 + 1)
    val = generate(config.val_size or DEFAULT_VAL, config.image_size, seed * 2 + 2)
    if config.channels != 3:
        train, val = (ImageTensors(resize_images(s.images, config.image_size, 1), s.labels) for s in (train, val))
    return in_memory_splits(train, val, config, seed, num_classes=len(CLASSES), class_names=CLASSES)
