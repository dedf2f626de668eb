"""One model's pruning state across steps: graph, scope, original counts, criterion, masks.

``Pruner.step(target)`` scores the groups in scope, selects channels globally so that the
scope reaches ``target`` (cumulative, from the original channel count) and then either
cuts them or, with ``mask=True``, zeroes them (mask-then-prune). With ``consumer_means``
(from ``collect_input_means`` on ``consumers()``) the lost contributions are compensated
first. The dependency graph is built once and stays valid across cuts, as in
Torch-Pruning's own iterative pruners; the group list is re-read after every cut.

``kept`` tracks, per group, which original channels survive physical cuts, so repair can
compare a pruned layer with the same channels of the dense model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from prunetune.config import LatencyConfig
from prunetune.errors import UserError
from prunetune.models.latency import layer_latencies
from prunetune.pruning.compensation import check_compensation, compensate
from prunetune.pruning.criteria import ScoringContext, channel_costs, get_criterion
from prunetune.pruning.masks import NORMS, ChannelMasks
from prunetune.pruning.repair import get_repair
from prunetune.pruning.scope import PrunableGroup, build_graph, select_scope
from prunetune.pruning.selection import Selection, select_channels
from prunetune.pruning.statistics import ChannelStats, batchnorm_after, execution_order
from prunetune.pruning.surgery import pruning_groups, remove_channels
from prunetune.registry import SCOPES


@dataclass(frozen=True)
class StepResult:
    selection: Selection
    removed: int  # channels cut (physical) or newly masked in this step
    masked: bool
    compensated: int  # consumer layers whose bias / BN mean absorbed the lost term (none the repair makes redundant)

    @property
    def sparsity(self) -> float:
        return self.selection.sparsity


class Pruner:
    def __init__(self, model: nn.Module, example_input: torch.Tensor, config, seed: int = 0, latency=None,
                 graph=None) -> None:
        """``config`` is a ``PruningConfig``; ``example_input`` one batch of the model's input;
        ``latency`` a ``LatencyConfig`` (where mac_aware measures layer latency; default: CPU, batch 1);
        ``graph`` the model's ``build_graph`` when the caller traced it already."""
        self.model = model
        self.example_input = example_input
        self.config = config
        self.latency = latency
        self.graph = graph if graph is not None else build_graph(model, example_input)
        self.criterion = get_criterion(config)
        self.generator = torch.Generator().manual_seed(seed)
        self.masks = ChannelMasks()
        groups = self.groups()
        if not groups:
            raise UserError(f"pruning.scope: no prunable channels in scope {config.scope!r} "
                            f"({SCOPES.describe(config.scope).rstrip('.')}) for this model ({type(model).__name__})"
                            + (f" with include {list(config.include)} / exclude {list(config.exclude)}"
                               if config.include or config.exclude else "") + "; see `prunetune list scopes`")
        self.original = {g.name: g.channels for g in groups}
        self.kept = {g.name: torch.arange(g.channels) for g in groups}
        self.recalibrated = get_repair(config.repair).recalibrates
        if config.compensation:
            check_compensation(self.consumers(groups), batchnorm_after(execution_order(model, example_input)),
                               config.repair, self.recalibrated)

    def groups(self) -> list[PrunableGroup]:
        return select_scope(self.model, self.graph, self.config.scope, self.config.include, self.config.exclude)

    @property
    def original_channels(self) -> int:
        return sum(self.original.values())

    def sparsity(self) -> float:
        live = sum(g.channels for g in self.groups()) - self.masks.count()
        return 1.0 - live / self.original_channels

    def consumers(self, groups: list[PrunableGroup] | None = None) -> dict[str, nn.Module]:
        """Layers reading the scope's channels: where compensation needs input means."""
        return {name: module for g in (groups or self.groups()) for name, module in g.consumers}

    def kept_channels(self) -> dict[str, torch.Tensor]:
        """Module name -> original indices of its surviving output channels, for cut layers."""
        kept = {}
        for group in self.groups():
            survivors = self.kept.get(group.name)
            if survivors is None or len(survivors) == self.original[group.name]:
                continue
            for name, module, side in group.members:
                produces = side == "out" and isinstance(module, (nn.Conv2d, nn.Linear))
                if (produces or isinstance(module, NORMS)) and _width(module) == len(survivors):
                    kept[name] = survivors
        return kept

    def _costs(self, groups: list[PrunableGroup]) -> dict[str, float]:
        if self.criterion.cost == "macs":
            return channel_costs(self.model, groups, self.example_input)
        if self.criterion.cost == "latency":
            return channel_costs(self.model, groups, self.example_input, latencies=self._layer_latencies())
        raise UserError(f"criterion {type(self.criterion).__name__}: cost {self.criterion.cost!r}; "
                        "allowed: macs, latency")

    def _layer_latencies(self) -> dict[nn.Module, float]:
        """Layer times of a copy on the latency device, keyed by this model's own layers."""
        settings = self.latency if self.latency is not None else LatencyConfig()
        device = torch.device(settings.device)
        timed = copy.deepcopy(self.model).to(device)
        example = torch.randn(settings.batch_size, *self.example_input.shape[1:], device=device)
        names = {module: name for name, module in timed.named_modules()}
        originals = dict(self.model.named_modules())
        measured = layer_latencies(timed, example, settings.repeats)
        return {originals[names[module]]: ms for module, ms in measured.items()}

    def scores(self, stats: dict[str, ChannelStats] | None = None,
               groups: list[PrunableGroup] | None = None) -> dict[str, torch.Tensor]:
        groups = groups if groups is not None else self.groups()
        costs = self._costs(groups) if self.criterion.needs_costs else {}
        context = ScoringContext(stats=stats or {}, costs=costs, generator=self.generator)
        scores = {g.name: self.criterion.score(g, context) for g in groups}
        for name, idxs in self.masks.masked.items():
            # Masked channels are gone already: ranking them first makes the new selection
            # contain them, so masks only grow and the count stays exact.
            scores[name] = scores[name].clone()
            scores[name][idxs] = float("-inf")
        return scores

    def step(self, target_sparsity: float, stats: dict[str, ChannelStats] | None = None,
             scores: dict[str, torch.Tensor] | None = None, consumer_means: dict[str, torch.Tensor] | None = None,
             mask: bool = False) -> StepResult:
        groups = self.groups()
        scores = scores if scores is not None else self.scores(stats, groups)
        selection = select_channels(groups, scores, target_sparsity, self.original,
                                    self.config.max_layer_ratio, self.config.round_to)
        compensated = 0
        if consumer_means:
            modules = dict(self.model.named_modules())
            means = {modules[name]: mean for name, mean in consumer_means.items() if name in modules}
            after = batchnorm_after(execution_order(self.model, self.example_input))

            def before_cut(group) -> None:
                nonlocal compensated
                compensated += compensate(group, means, after, self.recalibrated)
        else:
            before_cut = None
        if mask:
            previously = self.masks.count()
            tp_groups = pruning_groups(self.graph, groups, selection.remove)
            for group in tp_groups.values():
                if before_cut is not None:
                    before_cut(group)
            self.masks.set(selection.remove, tp_groups)
            return StepResult(selection, self.masks.count() - previously, True, compensated)
        previously_masked = self.masks.count()
        removed = remove_channels(self.graph, groups, selection, before_cut)
        for name, idxs in selection.remove.items():
            survivors = torch.ones(len(self.kept[name]), dtype=torch.bool)
            survivors[idxs] = False
            self.kept[name] = self.kept[name][survivors]
        self.masks.clear()
        return StepResult(selection, removed - previously_masked, False, compensated)


def _width(module: nn.Module) -> int:
    for attribute in ("out_channels", "out_features", "num_features", "normalized_shape"):
        value = getattr(module, attribute, None)
        if value is not None:
            return value[0] if isinstance(value, tuple) else value
    return -1
