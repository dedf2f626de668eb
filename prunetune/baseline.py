"""Train (or load) the unpruned model once, evaluate it, and keep it for every later run.

A baseline lives in ``<storage.root>/baselines/<model>-<dataset>-<hash>/`` with
``model.pt`` (the state_dict), ``baseline.json`` (accuracy, loss, MACs, params, the config
hash, per-epoch history) and ``config.yaml``. The hash covers exactly what decides the
baseline (seed, data, model, baseline sections), so a second call with an equal config
reuses the directory instead of retraining, and a pruning or search setting never forces
a retrain.

A separate distillation teacher (``recovery.teacher``) is loaded here too, before the
baseline trains, so a teacher that cannot serve the student is refused before any work.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from prunetune.config import JobConfig, ModelConfig
from prunetune.data import Loaders, Splits, build_splits, make_loaders
from prunetune.errors import ModelError
from prunetune.io import write_atomic
from prunetune.models import build_model, measure
from prunetune.runtime import Runtime, resolve_runtime, seed_everything
from prunetune.training import cross_entropy, evaluate, lr_at, make_optimizer, recalibrate_batchnorm, train_epoch

EpochCallback = Callable[[dict[str, Any]], None]
# Called before an epoch's first batch (batch 0) and after each of its optimizer steps, with
# {"epoch", "epochs", "batch", "batches"}: what a progress bar inside an epoch needs.
BatchCallback = Callable[[dict[str, int]], None]


@dataclass
class BaselineRecord:
    accuracy: float
    loss: float
    macs: int
    params: int
    config_hash: str
    model: str
    dataset: str
    num_classes: int
    channels: int
    image_size: int
    epochs: int
    train_seconds: float
    device: str
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Baseline:
    """A ready baseline: the model (on the runtime's device, eval mode) and its record."""

    model: nn.Module
    record: BaselineRecord
    directory: Path
    reused: bool
    splits: Splits
    loaders: Loaders
    runtime: Runtime
    teacher: nn.Module | None = None  # recovery.teacher, loaded and frozen; None: distil from the baseline


def baseline_dir(config: JobConfig) -> Path:
    model = re.sub(r"[^A-Za-z0-9_.-]+", "_", config.model.name)
    return Path(config.storage.root).expanduser() / "baselines" / f"{model}-{config.data.name}-{config.baseline_hash()}"


def prepare_baseline(config: JobConfig, on_epoch: EpochCallback | None = None,
                     on_batch: BatchCallback | None = None) -> Baseline:
    """Load the baseline for ``config`` if it exists, otherwise train and save it.

    ``on_epoch`` sees each trained epoch's row, ``on_batch`` each batch (``BatchCallback``).
    """
    runtime = resolve_runtime(config.runtime)
    seed_everything(config.seed)
    splits = build_splits(config.data, config.seed)
    loaders = make_loaders(splits, config.data, runtime.device, config.seed, runtime.channels_last)
    model = build_model(config.model, splits.num_classes, splits.channels)
    teacher = load_teacher(config, splits.num_classes, splits.channels, splits.image_size, runtime)
    directory = baseline_dir(config)
    record = _read_record(directory, config.baseline_hash())
    if record is not None:
        model.load_state_dict(torch.load(directory / "model.pt", map_location="cpu", weights_only=True))
        model = runtime.prepare(model).eval()
        return Baseline(model, record, directory, True, splits, loaders, runtime, teacher)

    model = runtime.prepare(model)
    started = time.perf_counter()
    history = _train(model, config, loaders, runtime, on_epoch, on_batch)
    seconds = time.perf_counter() - started
    final = evaluate(model, loaders.val, runtime)
    complexity = measure(model, splits.channels, splits.image_size)
    record = BaselineRecord(
        accuracy=final.accuracy,
        loss=final.loss,
        macs=complexity.macs,
        params=complexity.params,
        config_hash=config.baseline_hash(),
        model=config.model.name,
        dataset=config.data.name,
        num_classes=splits.num_classes,
        channels=splits.channels,
        image_size=splits.image_size,
        epochs=config.baseline.epochs,
        train_seconds=round(seconds, 3),
        device=str(runtime.device),
        history=history,
    )
    _save(directory, model, record, config)
    # Fresh loaders (shuffle and augmentation generators at their seed): what follows a
    # trained baseline must see the same batches as what follows a reused one.
    loaders = make_loaders(splits, config.data, runtime.device, config.seed, runtime.channels_last)
    return Baseline(model.eval(), record, directory, False, splits, loaders, runtime, teacher)


def load_teacher(config: JobConfig, num_classes: int, channels: int, image_size: int,
                 runtime: Runtime) -> nn.Module | None:
    """``recovery.teacher`` built and loaded, frozen, in eval mode on the runtime's device (None if unset).

    Built for the student's class count and input; a teacher whose logits are not of the
    student's classes is refused with one line naming ``recovery.teacher``.
    """
    settings = config.recovery.teacher
    if settings is None:
        return None
    classes = config.model.num_classes or num_classes
    # Building draws initial weights: off the seeded stream (and the probe below draws
    # nothing), so that a job with a teacher trains the same baseline as the job without one
    # (they share its folder).
    with torch.random.fork_rng(devices=[]):
        try:
            teacher = build_model(ModelConfig(**settings.model_dump()), classes, channels)
        except ModelError as error:
            raise ModelError(_teacher_message(str(error), classes)) from None
    teacher = runtime.prepare(teacher).eval().requires_grad_(False)
    try:
        with torch.no_grad():
            logits = teacher(torch.zeros(1, channels, image_size, image_size, device=runtime.device))
    except RuntimeError as error:
        raise ModelError(f"recovery.teacher: {settings.name!r} fails on the student's {channels}-channel "
                         f"{image_size}x{image_size} input: {str(error).splitlines()[0]}") from None
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != classes:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelError(f"recovery.teacher: {settings.checkpoint!r} ({settings.name}) outputs {shape} for one "
                         f"image; the student has {classes} classes, and a teacher must output (1, {classes})")
    return teacher


def _teacher_message(message: str, classes: int) -> str:
    # build_model names the model section's fields; the teacher's live under recovery.teacher.
    message = re.sub(r"\bmodel\.(name|checkpoint_format|checkpoint|kwargs)\b", r"recovery.teacher.\1", message)
    if "does not fit" in message:  # most often a head of another class count
        message += f" (the teacher is built for the student's {classes} classes)"
    return message


def _train(model: nn.Module, config: JobConfig, loaders: Loaders, runtime: Runtime,
           on_epoch: EpochCallback | None, on_batch: BatchCallback | None) -> list[dict[str, Any]]:
    settings = config.baseline
    if settings.epochs == 0:
        return []
    optimizer = make_optimizer(model, settings.optimizer, settings.lr, settings.weight_decay,
                               settings.momentum, runtime.device)
    per_epoch = len(loaders.train)
    total, warmup = settings.epochs * per_epoch, settings.warmup_epochs * per_epoch
    loss_fn = cross_entropy(settings.label_smoothing)
    history = []
    for epoch in range(settings.epochs):
        started = time.perf_counter()
        offset = epoch * per_epoch
        train = train_epoch(
            model, loaders.train, optimizer, loss_fn, runtime,
            lambda batch: lr_at(offset + batch, total, settings.lr, settings.lr_schedule, warmup),
            after_step=_batch_counter(on_batch, epoch + 1, settings.epochs, per_epoch),
        )
        if settings.recalibrate_bn:
            # BN running averages lag far behind the weights early in training (momentum
            # 0.01 in torchvision's MobileNetV3): re-estimate them so val is honest.
            recalibrate_batchnorm(model, loaders.calibration, runtime)
        val = evaluate(model, loaders.val, runtime)
        row = {
            "epoch": epoch + 1,
            "epochs": settings.epochs,
            "train_loss": train.loss,
            "train_accuracy": train.accuracy,
            "val_loss": val.loss,
            "val_accuracy": val.accuracy,
            "seconds": round(time.perf_counter() - started, 3),
        }
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return history


def _batch_counter(on_batch: BatchCallback | None, epoch: int, epochs: int,
                   batches: int) -> Callable[[], None] | None:
    """``train_epoch``'s per-step hook telling ``on_batch`` how far the epoch is (no host sync: counts only)."""
    if on_batch is None:
        return None
    done = itertools.count(1)
    on_batch({"epoch": epoch, "epochs": epochs, "batch": 0, "batches": batches})
    return lambda: on_batch({"epoch": epoch, "epochs": epochs, "batch": next(done), "batches": batches})


def _read_record(directory: Path, config_hash: str) -> BaselineRecord | None:
    record_file, model_file = directory / "baseline.json", directory / "model.pt"
    if not (record_file.is_file() and model_file.is_file()):
        return None
    try:
        data = json.loads(record_file.read_text())
        record = BaselineRecord(**data)
    except (json.JSONDecodeError, TypeError):
        return None  # a torn or foreign file: train again rather than trust it
    return record if record.config_hash == config_hash else None


def _save(directory: Path, model: nn.Module, record: BaselineRecord, config: JobConfig) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomic(directory / "model.pt", lambda path: torch.save(state, path))
    write_atomic(directory / "config.yaml", lambda path: path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False)))
    # The record goes last: its presence marks a complete baseline.
    write_atomic(directory / "baseline.json", lambda path: path.write_text(json.dumps(asdict(record), indent=2)))
