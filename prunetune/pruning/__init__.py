"""Structured channel pruning on Torch-Pruning's DependencyGraph.

Modules: scopes (``scope.py``), exact global selection (``selection.py``), the cut
(``surgery.py``), activation statistics (``statistics.py``), the criteria registry
(``criteria.py``), schedules with the MAC-target solver (``schedules.py``), bias
compensation (``compensation.py``), mask-then-prune (``masks.py``), the repair registry
with BN recalibration, layer-wise and ASR repair (``repair.py``), save/load of pruned
models (``persist.py``) and the per-model ``Pruner`` (``pruner.py``) that ties them.
"""

from prunetune.pruning.compensation import compensate
from prunetune.pruning.criteria import CRITERIA, Criterion, ScoringContext, channel_costs, get_criterion
from prunetune.pruning.masks import ChannelMasks, masked_complexity
from prunetune.pruning.persist import PrunedModel, load_pruned, save_pruned
from prunetune.pruning.pruner import Pruner, StepResult
from prunetune.pruning.repair import REPAIRS, DenseReference, RepairContext, dense_reference, repair
from prunetune.pruning.schedules import SCHEDULES, schedule_targets, solve_mac_target
from prunetune.pruning.scope import PrunableGroup, build_graph, select_scope
from prunetune.pruning.selection import Selection, select_channels
from prunetune.pruning.statistics import ChannelStats, collect_input_means, collect_output_stats, collect_stats
from prunetune.pruning.surgery import remove_channels

__all__ = [
    "CRITERIA", "REPAIRS", "SCHEDULES", "ChannelMasks", "ChannelStats", "Criterion", "DenseReference", "PrunableGroup",
    "PrunedModel", "Pruner", "RepairContext", "ScoringContext", "Selection", "StepResult", "build_graph",
    "channel_costs", "collect_input_means", "collect_output_stats", "collect_stats", "compensate", "dense_reference",
    "get_criterion", "load_pruned", "masked_complexity", "remove_channels", "repair", "save_pruned",
    "schedule_targets", "select_channels", "select_scope", "solve_mac_target",
]
