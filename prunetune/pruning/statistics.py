"""Per-channel activation statistics over calibration data, collected with hooks.

For each group the statistics live on its primary producer's output *after* its BN and
activation (seed 000: post-BN+ReLU for convs; after the activation for Linear; seed 003
1.3.3), the point ``post_activation_point`` finds from execution order; the variance-entropy
regulariser (seed 003 1.4.3) reads the same points. Running sums of x and x^2 give the mean
and the variance (for VBP); every spatial position or token is one observation, channels
are dim 1 for NCHW maps and the last dim for Linear / LayerNorm outputs (``channel_axis``).

Bias compensation needs something else: the mean of each *consumer's input*
(``collect_input_means``), which is where the pruned channels' signal actually arrives,
after any depthwise conv, BN, activation or squeeze-excitation gate between producer and
consumer (seed 003 2.4: "the statistics live on the channel that reaches the consumer").
Repair uses per-layer output moments (``collect_output_stats``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from prunetune.errors import UserError
from prunetune.pruning.scope import PrunableGroup
from prunetune.runtime import Runtime
from prunetune.torch_tools import evaluation_mode, forward_hooks

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.Hardtanh, nn.LeakyReLU, nn.Mish, nn.ELU,
               nn.PReLU, nn.Sigmoid, nn.Tanh, nn.Hardsigmoid)


# Layers whose outputs carry channels in the last dim, whatever the rank (ConvNeXt's
# Linear layers run on NHWC maps, ViT's on tokens).
LAST_DIM_CHANNELS = (nn.Linear, nn.LayerNorm)

# Pass their input through in eval mode: skipped between a producer, its BN and its activation.
TRANSPARENT = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)

BatchNorm = nn.modules.batchnorm._BatchNorm

# (module whose output is hooked, activation module applied to that output, or None)
StatPoint = tuple[nn.Module, "nn.Module | None"]


def channel_axis(module: nn.Module, values: torch.Tensor) -> int:
    """The channel axis of ``module``'s output ``values``: the last for Linear / LayerNorm
    (a channels-last map, tokens), else dim 1 (NCHW maps, (N, C) vectors)."""
    return values.ndim - 1 if isinstance(module, LAST_DIM_CHANNELS) or values.ndim < 2 else 1


@dataclass(frozen=True)
class ChannelStats:
    mean: torch.Tensor
    variance: torch.Tensor
    observations: int


def execution_order(model: nn.Module, example: torch.Tensor) -> list[nn.Module]:
    """Leaf modules in the order one eval-mode forward of ``example`` runs them."""
    order: list[nn.Module] = []
    leaves = [m for m in model.modules() if not list(m.children())]
    with forward_hooks((m, lambda module, i, o: order.append(module)) for m in leaves):
        with evaluation_mode(model), torch.no_grad():
            model(example)
    return order


def batchnorm_after(order: list[nn.Module]) -> dict[nn.Module, nn.modules.batchnorm._BatchNorm]:
    """Conv/Linear -> the BatchNorm that directly normalises its output, where one does."""
    pairs = {}
    for layer, following in zip(order, order[1:]):
        if (isinstance(layer, (nn.Conv2d, nn.Linear)) and isinstance(following, nn.modules.batchnorm._BatchNorm)
                and following.num_features == getattr(layer, "out_channels", getattr(layer, "out_features", -1))):
            pairs[layer] = following
    return pairs


class _Moments:
    """Running per-channel sums of x and x^2 in float64 (channels: dim 1 of NCHW, else last)."""

    def __init__(self) -> None:
        self.count, self.total, self.squares = 0, 0.0, 0.0

    def add(self, values: torch.Tensor, channel_dim: int) -> None:
        flat = values.detach().movedim(channel_dim, -1).reshape(-1, values.shape[channel_dim]).double()
        self.count += flat.shape[0]
        self.total = self.total + flat.sum(0)
        self.squares = self.squares + (flat * flat).sum(0)

    def result(self) -> ChannelStats:
        mean = self.total / self.count
        return ChannelStats(mean.float(), (self.squares / self.count - mean * mean).clamp_min(0).float(), self.count)

    def hook(self, activation: nn.Module | None):
        """A forward hook adding ``activation(output)`` (or the output itself) to these moments."""
        def add_output(module, inputs, output):
            values = output.detach().float()
            self.add(activation(values.clone()) if activation is not None else values, channel_axis(module, values))
        return add_output


def _forward_batches(model: nn.Module, loader: Iterable, runtime: Runtime, max_batches: int | None) -> None:
    """Eval-mode, no-grad forwards of up to ``max_batches`` batches; restores the mode."""
    with evaluation_mode(model), torch.no_grad():
        for batch, (images, _) in enumerate(loader):
            if max_batches is not None and batch >= max_batches:
                break
            with runtime.autocast():
                model(images.to(runtime.device))


def post_activation_point(order: list[nn.Module], producer: nn.Module,
                          parents: dict[nn.Module, nn.Module]) -> StatPoint:
    """Where a producer's channels are measured: after its BN and activation (seed 003 1.3.3).

    In ``order`` (leaf modules in execution order), after the producer and any Identity /
    Dropout, comes optionally the BN that normalises exactly its channels (in pre-activation
    nets such as DenseNet the next BN belongs to the next layer and sees a concatenation),
    then optionally an activation module. A BN holding its activation (timm's
    BatchNormAct2d, of which only the children are leaves) is hooked itself: its output is
    post-activation. Rule where no activation module follows (a projection conv, an MLP's
    fc2, an activation called as a function): the statistics are the BN's output, or the
    producer's, the signal the next layer reads.
    """
    position = order.index(producer)
    following: list[nn.Module] = []
    for module in order[position + 1 : position + 8]:
        parent = parents.get(module)
        module = parent if isinstance(parent, BatchNorm) else module
        if isinstance(module, TRANSPARENT) or (following and following[-1] is module):
            continue
        following.append(module)
        if len(following) == 2:
            break
    hooked, activation = producer, None
    width = getattr(producer, "out_channels", getattr(producer, "out_features", None))
    if following and isinstance(following[0], BatchNorm) and following[0].num_features == width:
        hooked = following.pop(0)
        if list(hooked.children()):
            return hooked, None
    if following and isinstance(following[0], ACTIVATIONS):
        activation = following[0]
    return hooked, activation


def stat_points(model: nn.Module, groups: list[PrunableGroup], example: torch.Tensor) -> dict[str, StatPoint]:
    """For each group: its primary producer's ``post_activation_point``."""
    order = execution_order(model, example)
    parents = {child: parent for parent in model.modules() for child in parent.children()}
    points = {}
    for group in groups:
        name, producer = group.producers[0]
        if producer not in order:
            raise UserError(f"pruning: layer {name} (producer of group {group.name}) does not run in an eval-mode "
                            "forward, so it has no statistics; exclude it with pruning.exclude")
        points[group.name] = post_activation_point(order, producer, parents)
    return points


def collect_stats(model: nn.Module, groups: list[PrunableGroup], loader: Iterable, runtime: Runtime,
                  max_batches: int | None = None) -> dict[str, ChannelStats]:
    """Mean and variance per channel of each group's post-activation output, in eval mode."""
    return collect_calibration(model, loader, runtime, max_batches, groups=groups)[0]


def collect_calibration(model: nn.Module, loader: Iterable, runtime: Runtime, max_batches: int | None = None,
                        groups: list[PrunableGroup] | None = None, consumers: dict[str, nn.Module] | None = None
                        ) -> tuple[dict[str, ChannelStats], dict[str, torch.Tensor]]:
    """One eval-mode pass giving both the groups' statistics and the consumers' input means."""
    moments: dict[str, _Moments] = {}
    sums: dict[str, list] = {}
    hooks = []

    def mean_hook(name: str):
        def hook(module, inputs):
            x = inputs[0].detach().float()
            flat = x if x.ndim == 4 and not isinstance(module, LAST_DIM_CHANNELS) else x.reshape(-1, x.shape[-1])
            entry = sums.setdefault(name, [0, 0.0])
            entry[0] += flat.shape[0]
            entry[1] = entry[1] + flat.sum(0).double()
        return hook

    if groups:
        example = next(iter(loader))[0][:1].to(runtime.device)
        for name, (module, activation) in stat_points(model, groups, example).items():
            moments[name] = _Moments()
            hooks.append((module, moments[name].hook(activation)))
    pre_hooks = [(module, mean_hook(name)) for name, module in (consumers or {}).items()]
    with forward_hooks(hooks, pre_hooks) as handles:
        if handles:
            _forward_batches(model, loader, runtime, max_batches)
    stats = {name: m.result() for name, m in moments.items() if m.count}
    means = {name: (total / count).float() for name, (count, total) in sums.items()}
    return stats, means


def collect_output_stats(model: nn.Module, modules: dict[str, nn.Module], loader: Iterable, runtime: Runtime,
                         max_batches: int | None = None) -> dict[str, ChannelStats]:
    """Mean and variance per output channel of each named module, in eval mode."""
    return collect_point_stats(model, {name: (module, None) for name, module in modules.items()}, loader, runtime,
                               max_batches)


def collect_point_stats(model: nn.Module, points: dict[str, tuple[nn.Module, nn.Module | None]], loader: Iterable,
                        runtime: Runtime, max_batches: int | None = None) -> dict[str, ChannelStats]:
    """Per-channel moments of ``activation(module output)`` for each named (module, activation)."""
    moments = {name: _Moments() for name in points}
    with forward_hooks((module, moments[name].hook(activation)) for name, (module, activation) in points.items()):
        _forward_batches(model, loader, runtime, max_batches)
    return {name: m.result() for name, m in moments.items() if m.count}


def collect_input_means(model: nn.Module, modules: dict[str, nn.Module], loader: Iterable, runtime: Runtime,
                        max_batches: int | None = None) -> dict[str, torch.Tensor]:
    """Mean of each named module's input over calibration data, kept per position.

    Conv inputs give a (C, H, W) map so that compensation can account for zero padding
    exactly; Linear inputs give (C,) (tokens averaged).
    """
    return collect_calibration(model, loader, runtime, max_batches, consumers=modules)[1]


def collect_gradients(model: nn.Module, loader: Iterable, runtime: Runtime, max_batches: int | None = None) -> int:
    """Accumulate cross-entropy gradients of calibration batches in ``.grad`` (for Taylor).

    Eval mode, so BN statistics are not disturbed; the caller zeroes the gradients after
    scoring. Returns the number of batches used.
    """
    used = 0
    with evaluation_mode(model):
        model.zero_grad(set_to_none=True)
        for batch, (images, labels) in enumerate(loader):
            if max_batches is not None and batch >= max_batches:
                break
            with runtime.autocast():
                logits = model(images.to(runtime.device))
            nn.functional.cross_entropy(logits.float(), labels.to(runtime.device)).backward()
            used += 1
    return used
