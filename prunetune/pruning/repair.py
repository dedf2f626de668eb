"""Post-pruning repair, one registry: ``none``, ``bn``, ``layerwise``, ``asr``.

``bn`` is BN recalibration (seed 003 1.5.3): reset the running statistics, forward K
calibration samples without gradients with only the BN layers in train mode, restore the
modes (``recalibrate_batchnorm``).

``layerwise`` and ``asr`` are variance-matching repairs (seed 004). For every output
channel i of a layer, v_d,i is its variance in the dense model and v_p,i in the pruned
one (the same original channel, tracked through the cuts). ASR's per-channel gain is

    gamma*_i = sqrt(v_d,i / v_p,i),  s_i = v_p,i / (v_p,i + lambda),
    gamma_i = s_i * gamma*_i + (1 - s_i)

so channels whose post-pruning signal is weak (v_p << lambda) are left alone instead of
being amplified, and healthy ones get the full variance match. ``layerwise`` uses one
gain per layer, sqrt(sum v_d / sum v_p).

Where the gain goes -- our choice, written down because seed 004 leaves it open. A
*repair point* is every BatchNorm, and every Conv/Linear whose output no BatchNorm
normalises (SE convs, MLP layers), the classifier excepted. Its variances are measured
after the activation that follows it (the signal the next layer receives), on the dense
model once and on the pruned model after BN recalibration. The gain scales the point's
output: a BN's affine weight and bias, or the layer's weight rows and bias. For
ReLU-like activations that scales the post-activation signal by exactly gamma_i.

Why after recalibration: recalibration is already per-channel variance matching *before*
the activation (a recalibrated BN divides by the pruned std), so a gain applied to a conv
and then recalibrated would be divided out again. What recalibration cannot restore is
the signal after the nonlinearity and after BN-less layers; the gains act there. So:
recalibrate -> measure -> scale -> recalibrate again (downstream BNs see the scaled
signals); this final recalibration is seed 004's "BN recalibration after ASR", and it keeps
a BN point's gain, which lives in the affine parameters that recalibration never touches.
lambda -> infinity gives gamma = 1, i.e. exactly ``bn``; lambda -> 0 matches every point's
post-activation variance to the dense model's. Each point's v_p is measured in one pass
with its upstream points not yet scaled, a one-pass approximation of a layer-by-layer
procedure.

lambda, data-driven: the configured ``asr_lambda`` is a multiple of each layer's median
v_p over its live channels (``shrinkage_lambda``). Variances differ by orders of magnitude
between layers, so an absolute lambda would shrink whole layers; relative to the median, a
channel at the layer's median pruned variance gets half its correction (s = 1/2 at the
default 1.0), the collapsed tail gets almost none and the strong channels almost all of it,
in every layer alike. Dead channels (v_p <= 1e-8: masked by mask-then-prune, or collapsed)
carry no signal: they are left out of the median and of ``layerwise``'s sums, and keep
gamma = 1.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from prunetune.errors import RunError
from prunetune.pruning.scope import output_layer
from prunetune.pruning.statistics import (ACTIVATIONS, ChannelStats, batchnorm_after, collect_point_stats,
                                           execution_order)
from prunetune.registry import REPAIRS
from prunetune.runtime import Runtime
from prunetune.training import recalibrate_batchnorm

EPSILON = 1e-8
BatchNorm = nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class DenseReference:
    """The dense model's per-channel moments at every repair point, measured once."""

    points: dict[str, ChannelStats]


@dataclass(kw_only=True)
class RepairContext:
    """What a repair may use; built by keyword. ``reference`` is set for repairs that need it."""

    model: nn.Module
    runtime: Runtime
    recalibration: Iterable  # batches for BN recalibration (the configured split)
    samples: int  # K: samples forwarded for recalibration
    calibration: Iterable = ()  # batches for the repair points' moments
    calibration_batches: int | None = None
    reference: DenseReference | None = None
    kept: dict[str, torch.Tensor] = field(default_factory=dict)  # from Pruner.kept_channels()
    asr_lambda: float = 1.0


def repair_points(model: nn.Module, example: torch.Tensor) -> dict[str, tuple[nn.Module, nn.Module | None]]:
    """Name -> (module whose output is scaled, activation applied after it, if any).

    A BN-less layer fed directly by another BN-less point (an SE gate's second conv) is
    left out: its variance is measured before its feeder is scaled, so its gain would
    correct a mismatch the feeder's gain already fixes. BN points do not have this
    problem, since the final recalibration divides out any scaling that reaches them.
    """
    order = execution_order(model, example)
    normalised = batchnorm_after(order)
    head = output_layer(model)
    names = {module: name for name, module in model.named_modules()}
    points, previous_unnormalised = {}, False
    for index, module in enumerate(order):
        weighted = isinstance(module, (nn.Conv2d, nn.Linear, BatchNorm))
        unnormalised = isinstance(module, (nn.Conv2d, nn.Linear)) and module not in normalised and module is not head
        chosen = isinstance(module, BatchNorm) or (unnormalised and not previous_unnormalised)
        if chosen and module in names and names[module] not in points:
            following = order[index + 1] if index + 1 < len(order) else None
            points[names[module]] = (module, following if isinstance(following, ACTIVATIONS) else None)
        if weighted:
            previous_unnormalised = unnormalised
    return points


def dense_reference(model: nn.Module, loader: Iterable, runtime: Runtime, max_batches: int | None = None) -> DenseReference:
    example = next(iter(loader))[0][:1].to(runtime.device)
    return DenseReference(collect_point_stats(model, repair_points(model, example), loader, runtime, max_batches))


def asr_gains(dense: torch.Tensor, pruned: torch.Tensor, lam: float) -> torch.Tensor:
    """Seed 004: gamma = s gamma* + (1 - s), gamma* = sqrt(v_d / v_p), s = v_p / (v_p + lambda).

    A dead channel (v_p <= EPSILON) gets gamma = 1: gamma* is undefined there and s -> 0 is
    the formula's own limit, also at lambda = 0, where it would otherwise multiply a
    constant output (a BN's beta) by ~1e4.
    """
    live = pruned > EPSILON
    pruned = pruned.clamp_min(EPSILON)
    full = (dense / pruned).sqrt()
    shrink = pruned / (pruned + lam) if lam != float("inf") else torch.zeros_like(pruned)
    return torch.where(live, shrink * full + (1.0 - shrink), torch.ones_like(full))


def shrinkage_lambda(pruned: torch.Tensor, multiple: float) -> float:
    """lambda = ``multiple`` x the median v_p of the layer's *live* channels (v_p > EPSILON).

    Dead channels are left out: under mask-then-prune a masked channel's variance is exactly
    0, and with more than half of a layer masked the plain median, hence lambda, would be 0
    and the shrinkage would silently vanish. A layer without live channels gets lambda = inf
    (gamma = 1 everywhere).
    """
    live = pruned[pruned > EPSILON]
    if len(live) == 0 or multiple == float("inf"):
        return float("inf")
    return multiple * live.median().item()


def layerwise_gains(dense: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
    """One variance-matching gain for the whole layer, sqrt(sum v_d / sum v_p), over live channels.

    Dead (masked) channels are left out of both sums, so a masked layer gets the gain the
    same layer gets after the physical cut, where those channels are gone.
    """
    live = pruned > EPSILON
    if not live.any():
        return torch.ones_like(pruned)
    return (dense[live].sum() / pruned[live].sum()).sqrt().expand_as(pruned)


def _aligned(dense: torch.Tensor, name: str, width: int, kept: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The dense values of the channels the pruned layer still has, or None if unknown."""
    if name in kept and len(kept[name]) == width:
        return dense[kept[name].to(dense.device)]
    return dense if len(dense) == width else None


@torch.no_grad()
def _scale_outputs(module: nn.Module, gains: torch.Tensor) -> None:
    """Multiply the output channels of a BN (affine) or a Conv/Linear (weight rows, bias) by ``gains``."""
    if getattr(module, "weight", None) is None:
        return  # a BN without affine parameters has nothing to scale
    gains = gains.to(module.weight.device, module.weight.dtype)
    module.weight.mul_(gains.view(-1, *([1] * (module.weight.ndim - 1))))
    if module.bias is not None:
        module.bias.mul_(gains)


def _variance_repair(context: RepairContext, gains: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    if context.reference is None:
        raise RunError("variance-matching repair needs the dense model's reference statistics")
    model, runtime = context.model, context.runtime
    recalibrate_batchnorm(model, context.recalibration, runtime, context.samples)
    example = next(iter(context.calibration))[0][:1].to(runtime.device)
    points = {n: p for n, p in repair_points(model, example).items() if n in context.reference.points}
    pruned = collect_point_stats(model, points, context.calibration, runtime, context.calibration_batches)
    for name, (module, _) in points.items():
        variance = pruned[name].variance
        dense = _aligned(context.reference.points[name].variance, name, len(variance), context.kept)
        if dense is not None:
            _scale_outputs(module, gains(dense.to(variance.device), variance))
    recalibrate_batchnorm(model, context.recalibration, runtime, context.samples)


@dataclass(frozen=True)
class Repair:
    """A registered repair: the function and what it needs from the pipeline.

    ``needs_reference``: the dense model's moments at every repair point, measured once
    before the first cut (``dense_reference``) and handed over as ``context.reference``.
    ``recalibrates``: it re-estimates every BN's running statistics, which makes bias
    compensation into a BN-normalised consumer exactly redundant (``compensation.py``).
    """

    apply: Callable[[RepairContext], None]
    needs_reference: bool = False
    recalibrates: bool = False

    @property
    def description(self) -> str:
        return inspect.getdoc(self.apply) or ""


def register_repair(name: str, needs_reference: bool = False,
                    recalibrates: bool = False) -> Callable[[Callable[[RepairContext], None]], Callable]:
    """Make a function ``(context) -> None`` selectable as ``pruning.repair: <name>``."""

    def decorator(function: Callable[[RepairContext], None]) -> Callable[[RepairContext], None]:
        REPAIRS.register(name)(Repair(function, needs_reference, recalibrates))
        return function

    return decorator


def get_repair(name: str) -> Repair:
    return REPAIRS.get(name, field="pruning.repair")


@register_repair("none")
def no_repair(context: RepairContext) -> None:
    """Leave the pruned model as the cut left it (stale BN statistics included)."""


@register_repair("bn", recalibrates=True)
def bn_recalibration(context: RepairContext) -> None:
    """BN recalibration: reset the running statistics, re-estimate them on calibration data."""
    recalibrate_batchnorm(context.model, context.recalibration, context.runtime, context.samples)


@register_repair("layerwise", needs_reference=True, recalibrates=True)
def layerwise(context: RepairContext) -> None:
    """One variance-matching gain per layer, sqrt(sum v_dense / sum v_pruned), then BN recalibration."""
    _variance_repair(context, layerwise_gains)


@register_repair("asr", needs_reference=True, recalibrates=True)
def asr(context: RepairContext) -> None:
    """Adaptive Signal Resuscitation (seed 004): shrunk per-channel variance matching, then BN recalibration."""
    def gains(dense: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
        return asr_gains(dense, pruned, shrinkage_lambda(pruned, context.asr_lambda))

    _variance_repair(context, gains)


def repair(kind: str, context: RepairContext) -> None:
    get_repair(kind).apply(context)
