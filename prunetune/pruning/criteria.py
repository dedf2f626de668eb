"""Channel importance criteria, one registry: a new criterion is one decorated class.

A criterion scores the channels of one group (``score(group, context) -> Tensor[C]``,
higher = more important). Scores are then normalised per group so one global ranking
across layers is meaningful; each criterion names its normaliser:

| criterion | score | normaliser |
| --- | --- | --- |
| l1 / l2 | per member layer, sum of |w|^p of the channel's weights; combined by ``group_reduction`` | divide by the group mean |
| bn_gamma | per BatchNorm of the group, |gamma|; combined by ``group_reduction`` | divide by the group mean |
| taylor | per member layer, |w * dL/dw| from calibration gradients, norm gamma and beta included; combined by ``group_reduction`` | divide by the group mean |
| lamp | l2's combined score, LAMP-weighted | LAMP's own (score / sum of scores not smaller) |
| random | uniform, from the pruner's seeded generator | none |
| vbp | variance of the producer's post-BN, post-activation output (seed 003 1.3.3) | divide by the group mean |
| mac_aware | wraps a base criterion (seed 003 1.3.4) | the base's, then the cost term |

Group reductions (seed 003 1.3.1, the ``REDUCTIONS`` registry, the only list): every member
layer contributes a score per channel of the group's root channel space (``member_scores``);
``mean``, ``max``, ``prod`` combine them, ``first`` keeps one. The members are ordered
primary producer first (the layer that names the group, whose output channels these are),
then the norm layer it feeds directly, then the rest in Torch-Pruning's group order, so
``first`` is the producer's own weights (bn_gamma: the producer's own BatchNorm). A
depthwise conv's input and output channels are the same ones, coupled 1:1: its kernel of a
channel counts once, like an output row (Torch-Pruning 1.6.1 skips depthwise convs). vbp and
random give one score per group, so the reduction leaves them as they are. Scores are
normalised in float64, so a ``prod`` of many small factors does not underflow.

``mac_aware``: with c = cost / max cost (cost = MACs of one channel of the group),
multiplicative: I = base^alpha * c^beta; additive: I = alpha * base + (1 - alpha) * c^beta.
beta > 0 raises the importance of costly channels, so cheap channels go first (protects
expensive layers, removes fewer MACs per channel); beta < 0 lowers it, so costly channels
go first (more MACs removed per channel, the usual aim); beta = 0 is the base criterion.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from prunetune.errors import UserError
from prunetune.pruning.masks import NORMS
from prunetune.pruning.scope import PrunableGroup
from prunetune.pruning.statistics import ChannelStats
from prunetune.registry import CRITERIA, REDUCTIONS
from prunetune.torch_tools import evaluation_mode, forward_hooks, handler_side, is_depthwise


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
    of one channel of each group (``ScoringContext.costs``, measured as ``cost`` says:
    ``macs`` or ``latency``). ``settings`` names the ``pruning`` config section whose fields
    are the criterion's keyword arguments; the constructor takes exactly those.
    """

    needs_stats = False
    needs_gradients = False
    needs_costs = False
    cost = "macs"
    settings: str | None = None
    normalise = True

    def __init__(self, group_reduction: str = "mean") -> None:
        self.group_reduction = group_reduction
        self.reduce = REDUCTIONS.get(group_reduction, field="pruning.group_reduction")

    def raw(self, group: PrunableGroup, context: ScoringContext) -> torch.Tensor:
        raise NotImplementedError

    def score(self, group: PrunableGroup, context: ScoringContext) -> torch.Tensor:
        values = self.raw(group, context).detach().double().cpu()
        if values.numel() != group.channels:
            raise UserError(f"criterion {type(self).__name__} gave {values.numel()} scores for group "
                            f"{group.name} of {group.channels} channels")
        if self.normalise:
            values = values / values.mean().clamp_min(torch.finfo(values.dtype).tiny)
        return values.float()

    def combine(self, group: PrunableGroup, vectors: list[torch.Tensor], problem: str) -> torch.Tensor:
        """The group reduction of the member scores ``member_scores`` gave; ``problem`` says why none."""
        if not vectors:
            raise UserError(f"pruning.criterion: {problem} in group {group.name} "
                            "(exclude it with pruning.exclude or choose another criterion)")
        reduced = self.reduce(torch.stack(vectors))
        if reduced.isnan().any():
            raise UserError(f"pruning.group_reduction: {self.group_reduction} left {int(reduced.isnan().sum())} "
                            f"channels of group {group.name} unscored (NaN marks a channel a layer does not carry)")
        return reduced


WEIGHTED = (nn.modules.conv._ConvNd, nn.Linear)
Saliency = Callable[[torch.Tensor], "torch.Tensor | None"]


def member_scores(group: PrunableGroup, saliency: Saliency, kinds: tuple[type, ...] = WEIGHTED + NORMS,
                  norm_bias: bool = False) -> list[torch.Tensor]:
    """One score per channel of the group's root space from each member layer of ``kinds``
    (seed 003 1.3.1): ``saliency(parameter)`` elementwise, summed over the channel's entries.

    Ordered primary producer first, then the norm it feeds, then Torch-Pruning's group order.
    NaN marks a channel a layer does not carry (an attention projection sees a third of a
    qkv group). ``norm_bias`` adds the norms' beta to their gamma.
    """
    producer = group.producers[0][1]
    links = {(dep.source.module, dep.target.module) for dep, _ in group.group}
    ranked = []
    for index, (dep, idxs) in enumerate(group.group):
        layer, side = dep.layer, handler_side(dep.handler)
        if not isinstance(layer, kinds):
            continue
        local = _layer_score(layer, side, idxs, saliency, norm_bias)
        if local is None:
            continue
        root = group.group[index].root_idxs
        if None in root:
            raise UserError(f"pruning.criterion: Torch-Pruning maps no channel of group {group.name} to a member "
                            "layer's channels; exclude the group with pruning.exclude")
        vector = torch.full((group.channels,), torch.nan, dtype=torch.float64, device=local.device)
        vector[torch.as_tensor(root, device=local.device)] = local.double()
        feeds = isinstance(layer, NORMS) and ((producer, layer) in links or (layer, producer) in links)
        rank = 0 if layer is producer and side == "out" else 1 if feeds else 2
        ranked.append((rank, index, vector))
    return [vector for _, _, vector in sorted(ranked, key=lambda item: item[:2])]


def _layer_score(layer: nn.Module, side: str | None, idxs, saliency: Saliency, norm_bias: bool) -> torch.Tensor | None:
    if isinstance(layer, WEIGHTED):
        weight = saliency(layer.weight)
        if weight is None:
            return None
        if getattr(layer, "transposed", False):
            weight = weight.transpose(0, 1)  # (in, out / groups, ...) -> the (out, in, ...) of a conv
        if side == "out" or is_depthwise(layer):
            # A depthwise conv's input and output channels are one set, coupled 1:1 (TP lists it
            # once): its kernel counts as the channel's output row.
            return weight[idxs].flatten(1).sum(1)
        if side != "in":
            return None
        local = weight.transpose(0, 1).flatten(1).sum(1)
        if isinstance(layer, nn.modules.conv._ConvNd) and layer.groups > 1:
            local = local.repeat(layer.groups)  # grouped conv: each block reads in / groups channels
        return local[idxs]
    if side != "out" or getattr(layer, "weight", None) is None:
        return None  # a norm without affine parameters has nothing to score
    gamma = saliency(layer.weight)
    if gamma is None:
        return None
    beta = saliency(layer.bias) if norm_bias and layer.bias is not None else None
    return (gamma + beta if beta is not None else gamma).flatten()[idxs]


def _magnitude(p: int) -> Saliency:
    return lambda parameter: parameter.detach().abs().pow(p)


def _taylor(parameter: torch.Tensor) -> torch.Tensor | None:
    return None if parameter.grad is None else (parameter.detach() * parameter.grad).abs()


@CRITERIA.register("l1")
class L1(Criterion):
    """Sum of |w| of the channel's weights per member layer (Conv, Linear, norm gamma), reduced."""

    p = 1

    def raw(self, group, context):
        return self.combine(group, member_scores(group, _magnitude(self.p)), f"l{self.p} found no weights")


@CRITERIA.register("l2")
class L2(L1):
    """Sum of w^2 of the channel's weights per member layer, reduced (p = 2)."""

    p = 2


@CRITERIA.register("bn_gamma")
class BNGamma(Criterion):
    """|gamma| of the group's BatchNorms (network slimming), reduced."""

    def raw(self, group, context):
        scores = member_scores(group, _magnitude(1), kinds=(nn.modules.batchnorm._BatchNorm,))
        return self.combine(group, scores, "bn_gamma found no BatchNorm")


@CRITERIA.register("lamp")
class Lamp(Criterion):
    """LAMP: l2's reduced score over the sum of the group's scores not smaller (Lee et al. 2021)."""

    normalise = False

    def raw(self, group, context):
        scores = self.combine(group, member_scores(group, _magnitude(2)), "lamp found no weights")
        ordered, order = scores.sort()
        # ordered[i] / sum_{j >= i} ordered[j]: a reversed cumulative sum of the ascending scores
        tails = ordered.flip(0).cumsum(0).flip(0)
        lamp = torch.empty_like(scores)
        lamp[order] = ordered / tails.clamp_min(torch.finfo(tails.dtype).tiny)
        return lamp


@CRITERIA.register("random")
class Random(Criterion):
    """Uniform random scores from the pruner's seeded generator (a control)."""

    normalise = False

    def raw(self, group, context):
        return torch.rand(group.channels, generator=context.generator)


# A reduction gets ``stacked[layer, channel]`` with NaN where the layer does not carry the
# channel; the built-in ones reduce over the layers that do.
@REDUCTIONS.register("mean")
def mean_reduction(stacked: torch.Tensor) -> torch.Tensor:
    """Mean over the group's member layers."""
    return stacked.nanmean(0)


@REDUCTIONS.register("max")
def max_reduction(stacked: torch.Tensor) -> torch.Tensor:
    """Largest score among the group's member layers."""
    return torch.where(stacked.isnan(), -torch.inf, stacked).max(0).values


@REDUCTIONS.register("prod")
def prod_reduction(stacked: torch.Tensor) -> torch.Tensor:
    """Product over the group's member layers (a channel any layer scores 0 goes first)."""
    return torch.where(stacked.isnan(), 1.0, stacked).prod(0)


@REDUCTIONS.register("first")
def first_reduction(stacked: torch.Tensor) -> torch.Tensor:
    """The first member's score alone: the group's primary producer (bn_gamma: its BatchNorm)."""
    return stacked[0]


@CRITERIA.register("taylor")
class Taylor(Criterion):
    """First-order Taylor |w * grad| (Molchanov et al.) per member layer, norm gamma and beta included."""

    needs_gradients = True

    def raw(self, group, context):
        scores = member_scores(group, _taylor, norm_bias=True)
        return self.combine(group, scores, "taylor needs gradients (a calibration backward pass); found none")


@CRITERIA.register("vbp")
class VarianceBased(Criterion):
    """Variance of the producer's post-BN, post-activation output (VBP, seed 003 1.3.3)."""

    needs_stats = True

    def raw(self, group, context):
        if group.name not in context.stats:
            raise UserError(f"pruning.criterion: vbp has no activation statistics for group {group.name}")
        variance = context.stats[group.name].variance
        if variance.numel() * group.channel_groups == group.channels:
            # GhostNet's [x, depthwise(x)] concat (scope.py): the producer makes x, block 0; block 1 is
            # a function of the same channels, so it shares their variance (selection takes whole positions).
            return variance.repeat(group.channel_groups)
        return variance


def _allowed(field_name: str) -> tuple[str, ...]:
    """The choices the config schema gives a mac_aware field: one list, in config.py."""
    from prunetune.config import MacAwareConfig

    return typing.get_args(MacAwareConfig.model_fields[field_name].annotation)


@CRITERIA.register("mac_aware")
class MacAware(Criterion):
    """A base criterion combined with the channel's MAC (or latency) cost (seed 003 1.3.4)."""

    needs_costs = True
    settings = "mac_aware"

    def __init__(self, group_reduction: str = "mean", base: str = "l1", alpha: float = 1.0, beta: float = 0.0,
                 mode: str = "multiplicative", cost: str = "macs") -> None:
        super().__init__(group_reduction)
        if base == "mac_aware":
            raise UserError("pruning.mac_aware.base: mac_aware cannot wrap itself")
        for field_name, value in (("mode", mode), ("cost", cost)):
            if value not in _allowed(field_name):
                raise UserError(f"pruning.mac_aware.{field_name}: {value!r}; allowed: {', '.join(_allowed(field_name))}")
        self.cost = cost  # the Pruner measures ScoringContext.costs this way
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
def output_sizes(model: nn.Module, example: torch.Tensor) -> dict[nn.Module, int]:
    """Elements in one image's output of each Conv2d / Linear that runs (one eval-mode forward)."""
    sizes: dict[nn.Module, int] = {}
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with forward_hooks((m, lambda module, i, o: sizes.__setitem__(module, o[0].numel())) for m in layers):
        with evaluation_mode(model):
            model(example[:1])
    return sizes


@torch.no_grad()
def channel_costs(model: nn.Module, groups: list[PrunableGroup], example: torch.Tensor,
                  latencies: dict[nn.Module, float] | None = None) -> dict[str, float]:
    """What one channel of each group costs: MACs from the layers' output sizes in one forward,
    or, given measured ``latencies`` per layer, each member layer's time over its channel count
    on the side the group cuts (a layer's time shrinks about in proportion to those channels)."""
    sizes = output_sizes(model, example)
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
