"""Post-pruning repair, one registry: ``none``, ``bn``, ``layerwise``, ``asr``.

``bn`` is BN recalibration (seed 003 1.5.3): reset the running statistics, forward K
calibration samples in train mode without gradients, back to eval.

``layerwise`` and ``asr`` are variance-matching repairs (seed 004). For every output
channel i of a layer, v_d,i is its variance in the dense model and v_p,i in the pruned
one (the same original channel, tracked through the cuts). ASR's per-channel gain is

    gamma*_i = sqrt(v_d,i / v_p,i),  s_i = v_p,i / (v_p,i + lambda),
    gamma_i = s_i * gamma*_i + (1 - s_i)

so channels whose post-pruning signal is weak (v_p << lambda) are left alone instead of
being amplified, and healthy ones get the full variance match. ``layerwise`` uses one
gain per layer, sqrt(sum v_d / sum v_p).

Where the gain goes -- our choice, written down because seed 004 leaves it open:

- A layer *without* a BatchNorm after it (SE convs, Linear layers, convs feeding
  LayerNorm): its output channels are scaled by gamma_i about their mean
  (W_i <- gamma_i W_i, b_i <- gamma_i b_i + (1 - gamma_i) mu_p,i), so the variance
  moves by gamma_i^2 and the mean stays.
- A layer *with* a BatchNorm after it: scaling the conv and then recalibrating the BN,
  as the seed's order reads literally, is a no-op (the recalibrated BN divides the gain
  back out). Recalibration is itself per-channel full variance matching: after it the
  BN divides by sqrt(v_p) where the dense model divided by sqrt(v_d), a gain of gamma*_i.
  So ASR there sets the BN's running variance to v_d,i / gamma_i^2 after recalibration:
  the net gain relative to the dense normalisation is exactly gamma_i, the running mean
  is the recalibrated one. lambda -> 0 gives plain BN recalibration, lambda -> infinity
  keeps the dense variance (the pruned signal is not amplified at all).

Order: recalibrate -> scale the BN-less layers (measured on the recalibrated model) ->
recalibrate again if any were scaled (their outputs feed later BNs) -> set the BN
variances. Each layer's v_p is measured with the upstream layers fully recalibrated, a
one-pass approximation of a layer-by-layer procedure.

lambda, data-driven: the configured ``asr_lambda`` is a multiple of each layer's median
v_p. Variances differ by orders of magnitude between layers, so an absolute lambda would
shrink whole layers; relative to the median, a channel at the layer's median pruned
variance gets half its correction (s = 1/2 at the default 1.0), the collapsed tail gets
almost none and the strong channels almost all of it, in every layer alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from prunetune.errors import RunError
from prunetune.pruning.scope import output_layer
from prunetune.pruning.statistics import ChannelStats, batchnorm_after, collect_output_stats, execution_order
from prunetune.registry import Registry
from prunetune.runtime import Runtime
from prunetune.training import recalibrate_batchnorm

REPAIRS: Registry[Callable[["RepairContext"], None]] = Registry("repair", home="prunetune.pruning.repair")
EPSILON = 1e-8
BatchNorm = nn.modules.batchnorm._BatchNorm


@dataclass(frozen=True)
class DenseReference:
    """What the repair compares against, measured once on the dense model."""

    norm_variance: dict[str, torch.Tensor]  # BN name -> running variance
    outputs: dict[str, ChannelStats]  # BN-less Conv/Linear name -> output moments


@dataclass
class RepairContext:
    model: nn.Module
    runtime: Runtime
    recalibration: Iterable  # batches for BN recalibration (the configured split)
    samples: int  # K: samples forwarded for recalibration
    calibration: Iterable = ()  # batches for the BN-less layers' output moments
    calibration_batches: int | None = None
    reference: DenseReference | None = None
    kept: dict[str, torch.Tensor] = field(default_factory=dict)  # from Pruner.kept_channels()
    asr_lambda: float = 1.0


def _unnormalised_layers(model: nn.Module, example: torch.Tensor) -> dict[str, nn.Module]:
    """Conv/Linear layers whose output no BatchNorm normalises, the classifier excluded."""
    order = execution_order(model, example)
    after = batchnorm_after(order)
    head = output_layer(model)
    names = {module: name for name, module in model.named_modules()}
    return {names[m]: m for m in order
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m not in after and m is not head and m in names}


def dense_reference(model: nn.Module, loader: Iterable, runtime: Runtime, max_batches: int | None = None) -> DenseReference:
    example = next(iter(loader))[0][:1].to(runtime.device)
    layers = _unnormalised_layers(model, example)
    return DenseReference(
        norm_variance={n: m.running_var.detach().clone() for n, m in model.named_modules()
                       if isinstance(m, BatchNorm) and m.running_var is not None},
        outputs=collect_output_stats(model, layers, loader, runtime, max_batches),
    )


def asr_gains(dense: torch.Tensor, pruned: torch.Tensor, lam: float) -> torch.Tensor:
    """Seed 004: gamma = s gamma* + (1 - s), gamma* = sqrt(v_d / v_p), s = v_p / (v_p + lambda)."""
    pruned = pruned.clamp_min(EPSILON)
    full = (dense / pruned).sqrt()
    shrink = pruned / (pruned + lam) if lam != float("inf") else torch.zeros_like(pruned)
    return shrink * full + (1.0 - shrink)


def layerwise_gains(dense: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
    """One variance-matching gain for the whole layer, sqrt(sum v_d / sum v_p)."""
    return (dense.sum() / pruned.sum().clamp_min(EPSILON)).sqrt().expand_as(pruned)


def _aligned(dense: torch.Tensor, name: str, width: int, kept: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """The dense values of the channels the pruned layer still has, or None if unknown."""
    if name in kept and len(kept[name]) == width:
        return dense[kept[name].to(dense.device)]
    return dense if len(dense) == width else None


@torch.no_grad()
def _scale_outputs(layer: nn.Module, gains: torch.Tensor, mean: torch.Tensor) -> None:
    gains = gains.to(layer.weight.device, layer.weight.dtype)
    layer.weight.mul_(gains.view(-1, *([1] * (layer.weight.ndim - 1))))
    shift = (1.0 - gains) * mean.to(gains.device, gains.dtype)
    if layer.bias is None:
        layer.bias = nn.Parameter(shift)
    else:
        layer.bias.mul_(gains).add_(shift)


def _variance_repair(context: RepairContext, gains: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    if context.reference is None:
        raise RunError("variance-matching repair needs the dense model's reference statistics")
    model, runtime = context.model, context.runtime
    recalibrate_batchnorm(model, context.recalibration, runtime, context.samples)
    example = next(iter(context.calibration))[0][:1].to(runtime.device)
    layers = {n: m for n, m in _unnormalised_layers(model, example).items() if n in context.reference.outputs}
    pruned = collect_output_stats(model, layers, context.calibration, runtime, context.calibration_batches)
    scaled = False
    for name, layer in layers.items():
        dense = _aligned(context.reference.outputs[name].variance, name, len(pruned[name].variance), context.kept)
        if dense is not None:
            _scale_outputs(layer, gains(dense.to(pruned[name].variance.device), pruned[name].variance),
                           pruned[name].mean)
            scaled = True
    if scaled:
        recalibrate_batchnorm(model, context.recalibration, runtime, context.samples)
    with torch.no_grad():
        for name, norm in model.named_modules():
            if not isinstance(norm, BatchNorm) or norm.running_var is None or name not in context.reference.norm_variance:
                continue
            dense = _aligned(context.reference.norm_variance[name], name, norm.num_features, context.kept)
            if dense is not None:
                dense = dense.to(norm.running_var.device)
                norm.running_var.copy_(dense / gains(dense, norm.running_var).pow(2))


@REPAIRS.register("none")
def no_repair(context: RepairContext) -> None:
    """Leave the pruned model as the cut left it (stale BN statistics included)."""


@REPAIRS.register("bn")
def bn_recalibration(context: RepairContext) -> None:
    recalibrate_batchnorm(context.model, context.recalibration, context.runtime, context.samples)


@REPAIRS.register("layerwise")
def layerwise(context: RepairContext) -> None:
    _variance_repair(context, layerwise_gains)


@REPAIRS.register("asr")
def asr(context: RepairContext) -> None:
    def gains(dense: torch.Tensor, pruned: torch.Tensor) -> torch.Tensor:
        return asr_gains(dense, pruned, context.asr_lambda * pruned.median().item())

    _variance_repair(context, gains)


def repair(kind: str, context: RepairContext) -> None:
    REPAIRS.get(kind, field="pruning.repair")(context)
