"""A user's own data and model, made outside prunetune: an ImageFolder tree of PNGs and a
checkpoint trained by a plain torch loop, evaluated by the user's own loop (the path a real
user takes to ``model.checkpoint`` + ``baseline.epochs: 0``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import datasets, transforms

from prunetune.models.zoo import tiny_cnn

CLASSES = ("diagonal", "horizontal", "vertical")  # ImageFolder's order: sorted
WIDTH = 8  # tiny_cnn's width: model.kwargs={width: 8}


def write_stripes(root: Path, train: int = 30, val: int = 15, side: int = 20, seed: int = 0) -> Path:
    """``root/{train,val}/<class>/<i>.png``: noisy stripes of random period, phase and colour."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side].astype(float)
    for split, count in (("train", train), ("val", val)):
        for name in CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            axis = {"horizontal": y, "vertical": x, "diagonal": (x + y) / 1.4}[name]
            for index in range(count):
                wave = np.sin(axis * 2 * np.pi / rng.uniform(4, 7) + rng.uniform(0, 2 * np.pi))
                pixels = rng.uniform(60, 190, 3) + 55 * wave[..., None] + rng.normal(0, 20, (side, side, 3))
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{index}.png")
    return root


def user_transform(resize: int = 18, crop: int = 16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)):
    """The user's own preprocessing, unlike prunetune's defaults (ImageNet mean/std, size/0.875)."""
    return transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(crop), transforms.ToTensor(),
                               transforms.Normalize(mean, std)])


def train_checkpoint(root: Path, transform, path: Path, bn_momentum: float = 0.1, epochs: int = 4,
                     seed: int = 0) -> nn.Module:
    """tiny_cnn trained by a plain loop on ``root/train``; its state_dict saved at ``path``.

    A small ``bn_momentum`` leaves the BN running statistics stale (far from the data's), as a
    model trained elsewhere often has them.
    """
    torch.manual_seed(seed)
    model = tiny_cnn(num_classes=len(CLASSES), width=WIDTH)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = bn_momentum
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(root / "train"), transform), 16, shuffle=True)
    model.train()
    for _ in range(epochs):
        for images, labels in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
    torch.save(model.state_dict(), path)
    return model.eval()


@torch.no_grad()
def own_eval(model: nn.Module, root: Path, transform) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the user's own evaluation loop on ``root/val``."""
    model.eval()
    correct, loss, count = 0, 0.0, 0
    for images, labels in torch.utils.data.DataLoader(datasets.ImageFolder(str(root / "val"), transform), 64):
        logits = model(images)
        correct += int((logits.argmax(1) == labels).sum())
        loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        count += len(labels)
    return correct / count, loss / count


def job_yaml(tmp_path: Path, tree: Path, checkpoint: Path, **data) -> Path:
    """A job on the user's tree and checkpoint: tiny_cnn, baseline.epochs 0, 16px, on the CPU in fp32
    (what the user's own loop computes: no bf16, no TF32 convolutions)."""
    settings = {"name": "imagefolder", "root": str(tree), "image_size": 16, "calibration_size": 60,
                "batch_size": 16, "num_workers": 0, **data}
    lines = "\n".join(f"  {key}: {value}" for key, value in settings.items())
    path = tmp_path / "job.yaml"
    path.write_text(f"storage: {{root: {tmp_path / 'runs'}}}\n"
                    f"model: {{name: tiny_cnn, kwargs: {{width: {WIDTH}}}, checkpoint: {checkpoint}}}\n"
                    f"data:\n{lines}\nbaseline: {{epochs: 0}}\n"
                    "pruning: {scope: all, schedule: {kind: targets, targets: [0.2]}}\n"
                    "recovery: {epochs: 0}\nruntime: {device: cpu, precision: fp32, threads: 1}\n")
    return path
