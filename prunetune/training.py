"""The training and evaluation loops shared by the baseline and recovery.

Metrics are summed on the device and read once per pass, so a pass over the data costs no
host synchronisation per batch. The learning rate is set per iteration from a plain
function (warm-up, then constant or cosine), which keeps schedules independent of the
optimizer object that recovery rebuilds after every structural change.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from prunetune.errors import ModelError
from prunetune.registry import LR_SCHEDULES, OPTIMIZERS
from prunetune.runtime import Runtime
from prunetune.torch_tools import evaluation_mode

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

# GoogLeNet (Szegedy et al. 2015, sec. 5) adds its auxiliary classifiers' cross-entropy
# weighted by 0.3 during training; Inception v3's single auxiliary head gets the same.
AUX_LOSS_WEIGHT = 0.3


@dataclass(frozen=True)
class PassResult:
    loss: float
    accuracy: float
    samples: int


@OPTIMIZERS.register("sgd")
def sgd(params: list[nn.Parameter], lr: float, weight_decay: float, momentum: float, fused: bool) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay,
                           foreach=True)


@OPTIMIZERS.register("adamw")
def adamw(params: list[nn.Parameter], lr: float, weight_decay: float, momentum: float, fused: bool) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay); the fused kernel on CUDA."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **({"fused": True} if fused else {"foreach": True}))


def make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, momentum: float = 0.9,
                   device: torch.device | None = None) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    fused = device is not None and device.type == "cuda"
    return OPTIMIZERS.get(name)(params, lr, weight_decay, momentum, fused)


@LR_SCHEDULES.register("constant")
def constant_lr(progress: float) -> float:
    """The base learning rate throughout."""
    return 1.0


@LR_SCHEDULES.register("cosine")
def cosine_lr(progress: float) -> float:
    """Cosine decay from the base learning rate to 0 over the iterations after warm-up."""
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def lr_at(iteration: int, total: int, base_lr: float, schedule: str, warmup: int) -> float:
    """Learning rate at ``iteration`` of ``total``: linear warm-up, then the registered schedule."""
    curve = LR_SCHEDULES.get(schedule)  # looked up first: an unknown name fails in warm-up too
    if iteration < warmup:
        return base_lr * (iteration + 1) / warmup
    progress = (iteration - warmup) / max(1, total - warmup)
    return base_lr * curve(progress)


def split_outputs(output) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(logits, auxiliary logits) of one forward's output.

    A tensor is the logits. A tuple or namedtuple (torchvision's GoogLeNetOutputs and
    InceptionOutputs in train mode) holds them in its ``logits`` field or first element and
    auxiliary classifiers' logits of the same shape in the rest (None where a head is off).
    """
    if isinstance(output, torch.Tensor):
        return output, []
    if isinstance(output, (tuple, list)) and output:
        main = output.logits if "logits" in getattr(output, "_fields", ()) else output[0]
        rest = [value for value in output if value is not main and value is not None]
        if isinstance(main, torch.Tensor) and all(isinstance(v, torch.Tensor) and v.shape == main.shape for v in rest):
            return main, rest
    raise ModelError(f"model output is {_describe(output)}: expected a logits tensor, or a tuple of logits and "
                     "auxiliary logits of the same shape (GoogLeNet, Inception v3 in train mode)")


def _describe(output) -> str:
    if isinstance(output, (tuple, list)):
        parts = [tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for v in output]
        return f"a {type(output).__name__} of {parts}"
    return f"a {type(output).__name__}"


def cross_entropy(label_smoothing: float = 0.0) -> LossFn:
    def loss(logits: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, labels, label_smoothing=label_smoothing)

    return loss


def train_epoch(
    model: nn.Module,
    loader: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    runtime: Runtime,
    lr_for_batch: Callable[[int], float] | None = None,
    after_step: Callable[[], None] | None = None,
) -> PassResult:
    """One pass of training; ``lr_for_batch(i)`` sets the lr before batch ``i`` if given.

    ``after_step`` runs after every optimizer step (mask-then-prune re-zeroes its masks there).
    ``loss_fn`` sees the main logits; auxiliary classifiers' logits (``split_outputs``) add
    their plain cross-entropy times ``AUX_LOSS_WEIGHT``, so they keep learning as in the
    recipe the model was trained with.
    """
    model.train()
    device = runtime.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    samples = 0
    for batch, (images, labels) in enumerate(loader):
        images, labels = _to(images, labels, runtime)
        if lr_for_batch is not None:
            lr = lr_for_batch(batch)
            for group in optimizer.param_groups:
                group["lr"] = lr
        with runtime.autocast():
            logits, auxiliary = split_outputs(model(images))
            loss = loss_fn(logits, images, labels)
            for aux_logits in auxiliary:
                loss = loss + AUX_LOSS_WEIGHT * nn.functional.cross_entropy(aux_logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        loss_sum += loss.detach() * len(labels)
        correct += (logits.detach().argmax(1) == labels).sum()
        samples += len(labels)
    return _result(loss_sum, correct, samples)


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, runtime: Runtime) -> PassResult:
    """Cross-entropy and top-1 accuracy over ``loader`` in eval mode."""
    device = runtime.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    samples = 0
    with evaluation_mode(model):
        for images, labels in loader:
            images, labels = _to(images, labels, runtime)
            with runtime.autocast():
                logits = split_outputs(model(images))[0]
            loss_sum += nn.functional.cross_entropy(logits.float(), labels, reduction="sum")
            correct += (logits.argmax(1) == labels).sum()
            samples += len(labels)
    return _result(loss_sum, correct, samples)


def _to(images: torch.Tensor, labels: torch.Tensor, runtime: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    if images.device != runtime.device:
        images = images.to(runtime.device, non_blocking=True)
        labels = labels.to(runtime.device, non_blocking=True)
        if runtime.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
    return images, labels


def _result(loss_sum: torch.Tensor, correct: torch.Tensor, samples: int) -> PassResult:
    if samples == 0:
        return PassResult(loss=float("nan"), accuracy=float("nan"), samples=0)
    return PassResult(loss=loss_sum.item() / samples, accuracy=correct.item() / samples, samples=samples)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader: Iterable, runtime: Runtime, max_samples: int | None = None) -> int:
    """Reset BatchNorm running statistics and re-estimate them from ``loader`` (seed 003 1.5.3).

    Only the BN layers run in train mode; every other module is in eval mode, so Dropout
    and stochastic depth (EfficientNet, ConvNeXt, timm's drop_path) do not perturb the
    signal whose statistics are collected: the estimates are those of the network as it
    is evaluated. No gradients. ``momentum=None`` makes each BN layer keep the exact
    cumulative mean over the batches seen instead of an exponential average that would
    lag (torchvision's MobileNetV3 uses momentum 0.01); the reset matters with it too, since
    a cumulative average would weigh the stale estimate by its ``num_batches_tracked``.
    Every module's train/eval flag and every BN's momentum are restored afterwards.
    Returns the number of samples used.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None
    seen = 0
    try:
        with evaluation_mode(model):
            for norm in norms:
                norm.train()
            for images, labels in loader:
                images, _ = _to(images, labels, runtime)
                if max_samples is not None:
                    images = images[: max_samples - seen]
                with runtime.autocast():
                    model(images)
                seen += len(images)
                if max_samples is not None and seen >= max_samples:
                    break
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
    return seen
