"""Train (or load) the unpruned model once, evaluate it, and keep it for every later run.

A baseline lives in ``<storage.root>/baselines/<model>-<dataset>-<key>/`` with
``model.pt`` (the state_dict), ``baseline.json`` (accuracies, loss, MACs, params, the key,
the eval preprocessing, per-epoch history) and ``config.yaml``. The key (``baseline_key``)
covers what decides the baseline's weights and measured accuracy: the seed, data, model
and baseline settings (``JobConfig.baseline_settings``: not how batches are served, nor an
untrained baseline's training recipe) and the *content* of ``model.checkpoint``. A second
call with an equal key reuses the directory; a pruning or search setting never forces a
retrain, and an overwritten checkpoint is measured again.

Measuring (docs/pipeline.md, "The baseline's accuracy"): the accuracy on val with the
model's own BatchNorm statistics and with statistics re-estimated on the calibration
split, both recorded. ``baseline.recalibrate_bn`` (default) keeps the re-estimated ones:
the baseline accuracy, the threshold derived from it, the teacher and the model every
pruned step starts from all use them, as every pruned step's own BN recalibration does.

A separate distillation teacher (``recovery.teacher``) is loaded here too, before the
baseline trains, so a teacher that cannot serve the student is refused before any work.
"""

from __future__ import annotations

import copy
import hashlib
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
from prunetune.errors import ModelError, RunError
from prunetune.io import file_digest, write_atomic
from prunetune.models import build_model, measure
from prunetune.runtime import Runtime, resolve_runtime, seed_everything
from prunetune.training import cross_entropy, evaluate, lr_at, make_optimizer, recalibrate_batchnorm, train_epoch

EpochCallback = Callable[[dict[str, Any]], None]
# Called before an epoch's first batch (batch 0) and after each of its optimizer steps, with
# {"epoch", "epochs", "batch", "batches"}: what a progress bar inside an epoch needs.
BatchCallback = Callable[[dict[str, int]], None]


# Bump when what a baseline measures changes: every older baseline is then measured (or
# trained) once again. 2: BN statistics recalibrated before measuring a checkpoint.
KEY_VERSION = 2
DIGESTS = "checkpoint-digests.json"  # in <root>/baselines/: checkpoint digests by path, size and times


@dataclass
class BaselineRecord:
    accuracy: float  # what the threshold derives from and every pruned step is compared with
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
    # Which BN statistics ``accuracy`` was measured with and model.pt holds: "recalibrated"
    # (on the calibration split), "own" (the model's, baseline.recalibrate_bn false) or "none" (no BN).
    bn_statistics: str
    accuracy_own_bn: float  # with the statistics the model came with (a checkpoint's; after training, the last epoch's)
    accuracy_recalibrated_bn: float | None  # re-estimated on the calibration split; None without BN layers
    calibration_images: int
    preprocessing: dict[str, Any] | None  # data.preprocessing.EvalPreprocessing as plain data
    history: list[dict[str, Any]] = field(default_factory=list)

    def accuracy_note(self) -> str:
        """The accuracy with what it was measured with, and the other measurement where it differs."""
        if self.bn_statistics == "none":
            return f"{self.accuracy:.4f}"
        own = "the model's own" if self.epochs == 0 else "the training's running averages"
        if self.bn_statistics == "recalibrated":
            other = (f"; {self.accuracy_own_bn:.4f} with {own}"
                     if self.accuracy_own_bn != self.accuracy_recalibrated_bn else "")
            return f"{self.accuracy:.4f} (BN statistics re-estimated on {self.calibration_images} calibration images{other})"
        return (f"{self.accuracy:.4f} (BN statistics: {own}, kept as baseline.recalibrate_bn is false; "
                f"{self.accuracy_recalibrated_bn:.4f} re-estimated)")


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

    def summary(self, threshold: float | None) -> dict[str, Any]:
        """What a run or search says about the baseline it prunes (``threshold``: None when it varies)."""
        record = self.record
        state = "reused" if self.reused else "trained" if record.epochs else "measured"
        return {"accuracy": record.accuracy, "note": record.accuracy_note(), "macs": record.macs,
                "params": record.params, "threshold": threshold, "reused": self.reused, "state": state,
                "directory": str(self.directory)}


def baseline_key(config: JobConfig) -> str:
    """The key of ``config``'s baseline: its deciding settings and its checkpoint's content digest.

    The checkpoint's path is no part of it (a moved file keeps its baseline, an overwritten
    one gets a new one); the digest is remembered by size and times in ``<root>/baselines/``.
    """
    settings = config.baseline_settings()
    checkpoint = config.model.checkpoint
    if checkpoint is not None:
        file = Path(checkpoint).expanduser()
        if not file.is_file():
            raise ModelError(f"model.checkpoint: {checkpoint!r} does not exist")
        settings["model"]["checkpoint"] = "sha256:" + file_digest(file, _baselines(config) / DIGESTS)
    settings["key_version"] = KEY_VERSION
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def baseline_dir(config: JobConfig, key: str | None = None) -> Path:
    model = re.sub(r"[^A-Za-z0-9_.-]+", "_", config.model.name)
    return _baselines(config) / f"{model}-{config.data.name}-{key or baseline_key(config)}"


def _baselines(config: JobConfig) -> Path:
    return Path(config.storage.root).expanduser() / "baselines"


def trained_baseline(config: JobConfig) -> BaselineRecord | None:
    """The record of the baseline already trained for ``config`` (its model.pt beside it), or None."""
    key = baseline_key(config)
    return _read_record(baseline_dir(config, key), key)


def prepare_baseline(config: JobConfig, on_epoch: EpochCallback | None = None,
                     on_batch: BatchCallback | None = None, directory: Path | None = None) -> Baseline:
    """Load the baseline for ``config`` if it exists, otherwise train (or measure) and save it.

    ``on_epoch`` sees each trained epoch's row, ``on_batch`` each batch (``BatchCallback``).
    ``directory``: use the complete baseline there, whatever its key (a search's trials use
    the driver's, so a checkpoint changed mid-search cannot give trials different baselines).
    """
    runtime = resolve_runtime(config.runtime)
    seed_everything(config.seed)
    splits = build_splits(config.data, config.seed)
    loaders = make_loaders(splits, config.data, runtime.device, config.seed, runtime.channels_last)
    model = build_model(config.model, splits.num_classes, splits.channels)
    teacher = load_teacher(config, splits.num_classes, splits.channels, splits.image_size, runtime)
    key = None if directory is not None else baseline_key(config)
    directory = Path(directory) if directory is not None else baseline_dir(config, key)
    record = _read_record(directory, key)
    if key is None and record is None:
        raise RunError(f"{directory}: the search's baseline is missing or incomplete there")
    if record is not None:
        model.load_state_dict(torch.load(directory / "model.pt", map_location="cpu", weights_only=True))
        model = runtime.prepare(model).eval()
        return Baseline(model, record, directory, True, splits, loaders, runtime, teacher)

    model = runtime.prepare(model)
    started = time.perf_counter()
    history = _train(model, config, loaders, runtime, on_epoch, on_batch)
    seconds = time.perf_counter() - started
    measured = _measure(model, config, loaders, runtime)
    complexity = measure(model, splits.channels, splits.image_size)
    record = BaselineRecord(
        **measured,
        macs=complexity.macs,
        params=complexity.params,
        config_hash=key,
        model=config.model.name,
        dataset=config.data.name,
        num_classes=splits.num_classes,
        channels=splits.channels,
        image_size=splits.image_size,
        epochs=config.baseline.epochs,
        train_seconds=round(seconds, 3),
        device=str(runtime.device),
        calibration_images=len(splits.calibration),
        preprocessing=splits.preprocessing.to_dict() if splits.preprocessing is not None else None,
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


def _measure(model: nn.Module, config: JobConfig, loaders: Loaders, runtime: Runtime) -> dict[str, Any]:
    """Val accuracy with the model's own BN statistics and with them re-estimated on the
    calibration split; the model keeps the re-estimated ones when ``baseline.recalibrate_bn``.

    A checkpoint trained elsewhere often carries statistics that do not fit this data and
    preprocessing (or lag its weights), while every pruned step is measured after BN
    recalibration: measured raw, such a baseline is beaten by its own pruned copies.
    """
    own = evaluate(model, loaders.val, runtime)
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return {"accuracy": own.accuracy, "loss": own.loss, "bn_statistics": "none",
                "accuracy_own_bn": own.accuracy, "accuracy_recalibrated_bn": None}
    keep = config.baseline.recalibrate_bn
    if keep and config.baseline.epochs > 0:
        recalibrated = own  # the last epoch re-estimated them on these very images
    else:
        target = model if keep else copy.deepcopy(model)  # the user's statistics stay where they are final
        recalibrate_batchnorm(target, loaders.calibration, runtime)
        recalibrated = evaluate(target, loaders.val, runtime)
    chosen = recalibrated if keep else own
    return {"accuracy": chosen.accuracy, "loss": chosen.loss, "bn_statistics": "recalibrated" if keep else "own",
            "accuracy_own_bn": own.accuracy, "accuracy_recalibrated_bn": recalibrated.accuracy}


def _read_record(directory: Path, key: str | None) -> BaselineRecord | None:
    """The complete record in ``directory`` for ``key`` (None: whatever its key), else None."""
    record_file, model_file = directory / "baseline.json", directory / "model.pt"
    if not (record_file.is_file() and model_file.is_file()):
        return None
    try:
        data = json.loads(record_file.read_text())
        record = BaselineRecord(**data)
    except (json.JSONDecodeError, TypeError):
        return None  # a torn or foreign file: train again rather than trust it
    return record if key is None or record.config_hash == key else None


def _save(directory: Path, model: nn.Module, record: BaselineRecord, config: JobConfig) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomic(directory / "model.pt", lambda path: torch.save(state, path))
    write_atomic(directory / "config.yaml", lambda path: path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False)))
    # The record goes last: its presence marks a complete baseline.
    write_atomic(directory / "baseline.json", lambda path: path.write_text(json.dumps(asdict(record), indent=2)))
