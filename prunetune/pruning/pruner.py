"""One model's pruning state across steps: graph, scope, original counts, criterion.

``Pruner.step(target)`` scores the groups in scope, selects channels globally so that the
scope reaches ``target`` (cumulative, from the original channel count) and cuts them.
The dependency graph is built once and stays valid across cuts, as in Torch-Pruning's
own iterative pruners; the group list is re-read after every cut.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunetune.pruning.criteria import ScoringContext, channel_costs, get_criterion
from prunetune.pruning.scope import PrunableGroup, build_graph, select_scope
from prunetune.pruning.selection import Selection, select_channels
from prunetune.pruning.statistics import ChannelStats
from prunetune.pruning.surgery import remove_channels


@dataclass(frozen=True)
class StepResult:
    selection: Selection
    removed: int

    @property
    def sparsity(self) -> float:
        return self.selection.sparsity


class Pruner:
    def __init__(self, model: nn.Module, example_input: torch.Tensor, config, seed: int = 0) -> None:
        """``config`` is a ``PruningConfig``; ``example_input`` one batch of the model's input."""
        self.model = model
        self.example_input = example_input
        self.config = config
        self.graph = build_graph(model, example_input)
        self.criterion = get_criterion(config)
        self.generator = torch.Generator().manual_seed(seed)
        self.original = {g.name: g.channels for g in self.groups()}

    def groups(self) -> list[PrunableGroup]:
        return select_scope(self.model, self.graph, self.config.scope, self.config.include, self.config.exclude)

    @property
    def original_channels(self) -> int:
        return sum(self.original.values())

    def sparsity(self) -> float:
        return 1.0 - sum(g.channels for g in self.groups()) / self.original_channels

    def scores(self, stats: dict[str, ChannelStats] | None = None,
               groups: list[PrunableGroup] | None = None) -> dict[str, torch.Tensor]:
        groups = groups if groups is not None else self.groups()
        costs = channel_costs(self.model, groups, self.example_input) if self.config.criterion == "mac_aware" else {}
        context = ScoringContext(stats=stats or {}, costs=costs, generator=self.generator)
        return {g.name: self.criterion.score(g, context) for g in groups}

    def step(self, target_sparsity: float, stats: dict[str, ChannelStats] | None = None,
             scores: dict[str, torch.Tensor] | None = None) -> StepResult:
        groups = self.groups()
        scores = scores if scores is not None else self.scores(stats, groups)
        selection = select_channels(groups, scores, target_sparsity, self.original,
                                    self.config.max_layer_ratio, self.config.round_to)
        removed = remove_channels(self.graph, groups, selection)
        return StepResult(selection, removed)
