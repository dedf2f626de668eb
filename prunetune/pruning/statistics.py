"""Per-channel activation statistics over calibration data, collected with hooks.

For each group the statistics live on its primary producer's output *after* its BN and
activation (seed 000: post-BN+ReLU for convs; after the activation for Linear; seed 003
1.3.3). The activation is found from execution order: the first leaf module that runs
after the producer (or its BN) and is an activation. Running sums of x and x^2 give the
mean (for bias compensation) and the variance (for VBP); every spatial position or token
is one observation, channels are dim 1 for NCHW maps and the last dim for Linear outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from prunetune.pruning.scope import PrunableGroup
from prunetune.runtime import Runtime

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.Hardtanh, nn.LeakyReLU, nn.Mish, nn.ELU,
               nn.PReLU, nn.Sigmoid, nn.Tanh, nn.Hardsigmoid)


@dataclass(frozen=True)
class ChannelStats:
    mean: torch.Tensor
    variance: torch.Tensor
    observations: int


def _execution_order(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    order: list[nn.Module] = []
    handles = [m.register_forward_hook(lambda module, i, o: order.append(module))
               for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            was_training = model.training
            model.eval()
            model(example)
            model.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
    return order


def stat_points(model: nn.Module, groups: list[PrunableGroup], example: torch.Tensor) -> dict[str, tuple[nn.Module, nn.Module | None]]:
    """For each group: (module whose output to hook, activation applied to that output)."""
    order = _execution_order(model, example)
    points = {}
    for group in groups:
        producer = group.producers[0][1]
        if producer not in order:
            continue
        position = order.index(producer)
        hooked, activation = producer, None
        following = order[position + 1 : position + 3]
        if following and isinstance(following[0], nn.modules.batchnorm._BatchNorm):
            hooked, following = following[0], following[1:]
        if following and isinstance(following[0], ACTIVATIONS):
            activation = following[0]
        points[group.name] = (hooked, activation)
    return points


@torch.no_grad()
def collect_stats(model: nn.Module, groups: list[PrunableGroup], loader: Iterable, runtime: Runtime,
                  max_batches: int | None = None) -> dict[str, ChannelStats]:
    """Mean and variance per channel of each group's post-activation output, in eval mode."""
    example = next(iter(loader))[0][:1].to(runtime.device)
    points = stat_points(model, groups, example)
    sums: dict[str, list] = {}

    def hook_for(name: str, activation: nn.Module | None):
        def hook(module, inputs, output):
            values = output.detach().float()
            if activation is not None:
                values = activation(values.clone())
            channel_dim = 1 if values.ndim == 4 else values.ndim - 1
            flat = values.movedim(channel_dim, -1).reshape(-1, values.shape[channel_dim]).double()
            entry = sums.setdefault(name, [0, 0.0, 0.0])
            entry[0] += flat.shape[0]
            entry[1] = entry[1] + flat.sum(0)
            entry[2] = entry[2] + (flat * flat).sum(0)
        return hook

    handles = [module.register_forward_hook(hook_for(name, act)) for name, (module, act) in points.items()]
    was_training = model.training
    model.eval()
    try:
        for batch, (images, _) in enumerate(loader):
            if max_batches is not None and batch >= max_batches:
                break
            with runtime.autocast():
                model(images.to(runtime.device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    result = {}
    for name, (count, total, squares) in sums.items():
        mean = total / count
        result[name] = ChannelStats(mean.float(), (squares / count - mean * mean).clamp_min(0).float(), count)
    return result
