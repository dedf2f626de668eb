"""Recovery after each pruning step: distillation from the teacher, lr by sparsity, patience.

The teacher is the unpruned baseline, or ``recovery.teacher`` (a separate trained model).

Learning rate (seed 001's names): ``lr`` is used while the step's *target* sparsity is
below ``lr_high_threshold``; from that target on, ``lr_high``. Seed 001 ran lr 1e-4 and
switched to lr_high 3e-5 from 0.21: despite its name, ``lr_high`` is the rate for the
*high-sparsity* regime and may well be the smaller one. Within a step the rate follows
``lr_schedule`` (constant or cosine over the step's epochs) after ``warmup_epochs`` of
linear warm-up.

Patience: validation accuracy after every epoch; ``patience`` epochs without a new best
end the step; the best state (weights and BN buffers) is restored at the end. The state
before the first epoch is a candidate too (epoch 0): recovery never leaves a step worse
than it found it. The optimizer is built anew for every step because every cut creates
new Parameter objects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from prunetune.errors import RunError
from prunetune.pipeline.losses import distillation_loss
from prunetune.runtime import Runtime
from prunetune.training import evaluate, lr_at, make_optimizer, train_epoch

EpochCallback = Callable[[dict], None]


def recovery_lr(recovery, target_sparsity: float) -> float:
    """``lr_high`` at or above ``lr_high_threshold``, ``lr`` below it (or when unset)."""
    if recovery.lr_high is not None and target_sparsity >= recovery.lr_high_threshold - 1e-12:
        return recovery.lr_high
    return recovery.lr


@dataclass
class RecoveryResult:
    accuracy: float
    best_epoch: int  # 0: no epoch beat the state recovery started from
    epochs_run: int
    lr: float
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)


def make_loss(teacher: nn.Module, alpha: float, temperature: float,
              extra: Callable[[], torch.Tensor] | None = None):
    """The training loss of ``train_epoch``: distillation from ``teacher`` plus ``extra()``."""

    def loss(logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if alpha > 0.0:
            with torch.no_grad():
                teacher_logits = teacher(images)
        else:
            teacher_logits = logits.detach()
        value = distillation_loss(logits, teacher_logits, labels, alpha, temperature)
        return value + extra() if extra is not None else value

    return loss


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def recover(model: nn.Module, loss_fn, train_loader, val_loader, runtime: Runtime, recovery, target_sparsity: float,
            start_accuracy: float, after_step: Callable[[], None] | None = None,
            on_epoch: EpochCallback | None = None, epochs: int | None = None,
            recalibrate: Callable[[], None] | None = None, lr: float | None = None,
            judge: Callable[[nn.Module], float] | None = None) -> RecoveryResult:
    """Train up to ``recovery.epochs`` epochs (or ``epochs``); restore the best validation state.

    ``lr`` replaces the rate chosen by ``target_sparsity`` (the final fine-tuning's ``final_lr``).
    ``judge(model)`` replaces the validation accuracy an epoch is judged (and kept) by: TKP's
    stage 1 judges a dense model by the accuracy its hard masks would leave.

    ``recalibrate`` runs after each epoch, before evaluation: with a low BN momentum
    (0.01 in torchvision's MobileNetV3) a few hundred recovery batches leave the running
    statistics far behind the weights, and the epoch would be judged on stale statistics
    (measured on digits: every epoch looked worse than none at lr 1e-3).
    """
    epochs = recovery.epochs if epochs is None else epochs
    lr = recovery_lr(recovery, target_sparsity) if lr is None else lr
    result = RecoveryResult(accuracy=start_accuracy, best_epoch=0, epochs_run=0, lr=lr)
    if epochs == 0:
        return result
    optimizer = make_optimizer(model, recovery.optimizer, lr, recovery.weight_decay, device=runtime.device)
    per_epoch = len(train_loader)
    total, warmup = epochs * per_epoch, recovery.warmup_epochs * per_epoch
    best_state = _snapshot(model)
    since_best = 0
    # Compiled per step: every cut changes shapes, so a graph never outlives its step.
    trainee = torch.compile(model) if runtime.compile else model
    for epoch in range(1, epochs + 1):
        offset = (epoch - 1) * per_epoch
        started = time.perf_counter()
        trained = train_epoch(trainee, train_loader, optimizer, loss_fn, runtime,
                              lambda i: lr_at(offset + i, total, lr, recovery.lr_schedule, warmup), after_step)
        if not math.isfinite(trained.loss):
            raise RunError(f"recovery diverged: training loss is {trained.loss} in epoch {epoch} at target sparsity "
                           f"{target_sparsity:.3f} (lr {lr:g}); lower recovery.lr / recovery.lr_high")
        if recalibrate is not None:
            recalibrate()
        middle = time.perf_counter()
        accuracy = judge(model) if judge is not None else evaluate(model, val_loader, runtime).accuracy
        result.train_seconds += middle - started
        result.eval_seconds += time.perf_counter() - middle
        result.epochs_run = epoch
        improved = accuracy > result.accuracy
        if improved:
            result.accuracy, result.best_epoch, since_best = accuracy, epoch, 0
            best_state = _snapshot(model)
        else:
            since_best += 1
        record = {"epoch": epoch, "epochs": epochs, "train_loss": trained.loss, "train_accuracy": trained.accuracy,
                  "val_accuracy": accuracy, "best": improved, "lr": lr}
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if recovery.patience is not None and since_best >= recovery.patience:
            break
    model.load_state_dict(best_state)
    return result
