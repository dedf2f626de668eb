"""Channel importance criteria, one registry: a new criterion is one decorated class.

A criterion scores the channels of one group (``score(group, context) -> Tensor[C]``,
higher = more important). Scores are then normalised per group so one global ranking
across layers is meaningful; each criterion names its normaliser:

| criterion | score | normaliser |
| --- | --- | --- |
| l1 / l2 | sum over the group's layers of |w|^p of the channel's weights (TP's GroupMagnitudeImportance), combined by ``group_reduction`` | divide by the group mean |
| bn_gamma | |gamma| of the group's BatchNorms | divide by the group mean |
| taylor | |w * dL/dw| over the group's layers *including BN gamma and beta* (TP's Taylor never scores BN) from calibration gradients | divide by the group mean |
| lamp | LAMP (TP's LAMPImportance) | LAMP's own (score / sum of scores not smaller) |
| random | uniform, from the pruner's seeded generator | none |
| vbp | variance of the producer's post-BN, post-activation output (seed 003 1.3.3) | divide by the group mean |
| mac_aware | wraps a base criterion (seed 003 1.3.4) | the base's, then the cost term |

``mac_aware``: with c = cost / max cost (cost = MACs of one channel of the group),
multiplicative: I = base^alpha * c^beta; additive: I = alpha * base + (1 - alpha) * c^beta.
beta > 0 raises the importance of costly channels, so cheap channels go first (protects
expensive layers, removes fewer MACs per channel); beta < 0 lowers it, so costly channels
go first (more MACs removed per channel, the usual aim); beta = 0 is the base criterion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from prunetune.errors import UserError
from prunetune.pruning.scope import PrunableGroup
from prunetune.pruning.statistics import ChannelStats
from prunetune.registry import CRITERIA, REDUCTIONS
from prunetune.torch_tools import evaluation_mode, forward_hooks, is_depthwise

EPSILON = 1e-12


@dataclass
class ScoringContext:
    stats: dict[str, ChannelStats] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))


class Criterion:
    """Base of every criterion; subclasses set the flags and implement ``raw``.

    The flags say what the pipeline must collect before scoring: ``needs_stats`` the
    post-activation channel statistics of a calibration pass (``ScoringContext.stats``),
    ``needs_gradients`` calibration gradients on the parameters, ``needs_costs`` the cost
    of one channel of each group (``ScoringContext.costs``). ``settings`` names the
    ``pruning`` config section whose fields are the criterion's keyword arguments.
    """

    needs_stats = False
    needs_gradients = False
    needs_costs = False
    settings: str | None = None
    normalise = True

    def __init__(self, group_reduction: str = "mean", **_: object) -> None:
        self.group_reduction = group_reduction

    def raw(self, group: PrunableGroup, context: ScoringContext) -> torch.Tensor:
        raise NotImplementedError

    def score(self, group: PrunableGroup, context: ScoringContext) -> torch.Tensor:
        values = self.raw(group, context).detach().float().cpu()
        if values.numel() != group.channels:
            raise UserError(f"criterion {type(self).__name__} gave {values.numel()} scores for group "
                            f"{group.name} of {group.channels} channels")
        return values / values.mean().clamp_min(EPSILON) if self.normalise else values


def _tp_scores(importance, group: PrunableGroup, what: str) -> torch.Tensor:
    values = importance(group.group)
    if values is None:
        raise UserError(f"pruning.criterion: {what} found nothing to score in group {group.name} "
                        "(exclude it with pruning.exclude or choose another criterion)")
    return values


@CRITERIA.register("l1")
class L1(Criterion):
    """Sum of |w| of the channel's weights over the group's layers (TP GroupMagnitudeImportance, p = 1)."""

    p = 1

    def raw(self, group, context):
        importance = tp.importance.GroupMagnitudeImportance(p=self.p, group_reduction=self.group_reduction,
                                                            normalizer=None)
        return _tp_scores(importance, group, f"l{self.p}")


@CRITERIA.register("l2")
class L2(L1):
    """Sum of w^2 of the channel's weights over the group's layers (p = 2)."""

    p = 2


@CRITERIA.register("bn_gamma")
class BNGamma(Criterion):
    """|gamma| of the group's BatchNorms (network slimming)."""

    def raw(self, group, context):
        importance = tp.importance.BNScaleImportance(group_reduction=self.group_reduction, normalizer=None)
        return _tp_scores(importance, group, "bn_gamma (no BatchNorm in the group)")


@CRITERIA.register("lamp")
class Lamp(Criterion):
    """LAMP: squared magnitude over the sum of the not-smaller ones (TP LAMPImportance)."""

    normalise = False

    def raw(self, group, context):
        importance = tp.importance.LAMPImportance(p=2, group_reduction=self.group_reduction, normalizer="lamp")
        return _tp_scores(importance, group, "lamp")


@CRITERIA.register("random")
class Random(Criterion):
    """Uniform random scores from the pruner's seeded generator (a control)."""

    normalise = False

    def raw(self, group, context):
        return torch.rand(group.channels, generator=context.generator)


@REDUCTIONS.register("mean")
def mean_reduction(stacked: torch.Tensor) -> torch.Tensor:
    """Mean over the group's layers."""
    return stacked.mean(0)


@REDUCTIONS.register("max")
def max_reduction(stacked: torch.Tensor) -> torch.Tensor:
    """Largest score among the group's layers."""
    return stacked.max(0).values


@REDUCTIONS.register("sum")
def sum_reduction(stacked: torch.Tensor) -> torch.Tensor:
    """Sum over the group's layers."""
    return stacked.sum(0)


@REDUCTIONS.register("first")
def first_reduction(stacked: torch.Tensor) -> torch.Tensor:
    """The first layer's score alone (the group's root producer)."""
    return stacked[0]


def _reduce(vectors: list[torch.Tensor], how: str) -> torch.Tensor:
    return REDUCTIONS.get(how, field="pruning.group_reduction")(torch.stack(vectors))


@CRITERIA.register("taylor")
class Taylor(Criterion):
    """First-order Taylor |w * grad| (Molchanov et al.), BN affine parameters included."""

    needs_gradients = True

    def raw(self, group, context):
        vectors = []
        for index, (dep, idxs) in enumerate(group.group):
            layer, fn = dep.layer, dep.pruning_fn
            root = torch.as_tensor(group.group[index].root_idxs)
            local = self._local(layer, fn, idxs)
            if local is not None:
                vector = torch.zeros(group.channels, device=local.device)
                vector[root] = local
                vectors.append(vector)
        if not vectors:
            raise UserError(f"pruning.criterion: taylor needs gradients; none found in group {group.name}")
        return _reduce(vectors, self.group_reduction)

    @staticmethod
    def _local(layer: nn.Module, fn, idxs) -> torch.Tensor | None:
        def saliency(parameter):
            return None if parameter is None or parameter.grad is None else (parameter.data * parameter.grad).abs()

        fns = tp.pruner.function
        if fn in (fns.prune_conv_out_channels, fns.prune_linear_out_channels):
            weight = saliency(layer.weight)
            return None if weight is None else weight[idxs].flatten(1).sum(1)
        if fn in (fns.prune_conv_in_channels, fns.prune_linear_in_channels):
            weight = saliency(layer.weight)
            if weight is None:
                return None
            local = weight.transpose(0, 1).flatten(1).sum(1)
            if isinstance(layer, nn.Conv2d) and layer.groups not in (1, layer.in_channels):
                local = local.repeat(layer.groups)
            return local[idxs]
        if fn == fns.prune_batchnorm_out_channels and layer.affine:
            gamma, beta = saliency(layer.weight), saliency(layer.bias)
            if gamma is None:
                return None
            return gamma[idxs] + (beta[idxs] if beta is not None else 0)
        return None


@CRITERIA.register("vbp")
class VarianceBased(Criterion):
    """Variance of the producer's post-BN, post-activation output (VBP, seed 003 1.3.3)."""

    needs_stats = True

    def raw(self, group, context):
        if group.name not in context.stats:
            raise UserError(f"pruning.criterion: vbp has no activation statistics for group {group.name}")
        return context.stats[group.name].variance


@CRITERIA.register("mac_aware")
class MacAware(Criterion):
    """A base criterion combined with the channel's MAC (or latency) cost (seed 003 1.3.4)."""

    needs_costs = True
    settings = "mac_aware"

    def __init__(self, group_reduction: str = "mean", base: str = "l1", alpha: float = 1.0, beta: float = 0.0,
                 mode: str = "multiplicative", **_: object) -> None:
        super().__init__(group_reduction)
        if base == "mac_aware":
            raise UserError("pruning.mac_aware.base: mac_aware cannot wrap itself")
        self.base = CRITERIA.get(base, field="pruning.mac_aware.base")(group_reduction=group_reduction)
        self.alpha, self.beta, self.mode = alpha, beta, mode
        self.needs_stats, self.needs_gradients = self.base.needs_stats, self.base.needs_gradients
        self.normalise = False

    def raw(self, group, context):
        if group.name not in context.costs:
            raise UserError(f"pruning.criterion: mac_aware has no MAC cost for group {group.name}")
        base = self.base.score(group, context).clamp_min(0)
        cost = context.costs[group.name] / max(context.costs.values())
        factor = cost**self.beta
        if self.mode == "multiplicative":
            return base**self.alpha * factor
        return self.alpha * base + (1.0 - self.alpha) * factor


def get_criterion(config) -> Criterion:
    """The criterion a ``PruningConfig`` names, with its settings."""
    cls = CRITERIA.get(config.criterion, field="pruning.criterion")
    extra = getattr(config, cls.settings).model_dump() if cls.settings else {}
    return cls(group_reduction=config.group_reduction, **extra)


@torch.no_grad()
def channel_costs(model: nn.Module, groups: list[PrunableGroup], example: torch.Tensor,
                  latencies: dict[nn.Module, float] | None = None) -> dict[str, float]:
    """What one channel of each group costs: MACs from the layers' output sizes in one forward,
    or, given measured ``latencies`` per layer, each member layer's time over its channel count
    on the side the group cuts (a layer's time shrinks about in proportion to those channels)."""
    sizes: dict[nn.Module, int] = {}
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with forward_hooks((m, lambda module, i, o: sizes.__setitem__(module, o[0].numel())) for m in layers):
        with evaluation_mode(model):
            model(example[:1])
    costs = {}
    for group in groups:
        total = 0.0
        for _, module, side in group.members:
            if module not in sizes:
                continue
            if latencies is not None:
                total += _latency_per_channel(module, side, latencies)
            elif isinstance(module, nn.Conv2d):
                positions = sizes[module] / module.out_channels
                kernel = module.kernel_size[0] * module.kernel_size[1]
                if is_depthwise(module):
                    total += kernel * positions if side == "out" else 0.0
                elif side == "out":
                    total += module.in_channels / module.groups * kernel * positions
                else:
                    total += module.out_channels / module.groups * kernel * positions
            else:
                tokens = sizes[module] / module.out_features
                total += (module.in_features if side == "out" else module.out_features) * tokens
        costs[group.name] = total
    return costs


def _latency_per_channel(module: nn.Module, side: str, latencies: dict[nn.Module, float]) -> float:
    if module not in latencies:
        return 0.0
    if is_depthwise(module) and side == "in":
        return 0.0  # its input and output channels are the same ones: counted once, on the out side
    if isinstance(module, nn.Conv2d):
        channels = module.out_channels if side == "out" else module.in_channels
    else:
        channels = module.out_features if side == "out" else module.in_features
    return latencies[module] / channels
