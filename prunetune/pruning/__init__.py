"""Structured channel pruning on Torch-Pruning's DependencyGraph.

Done so far: scopes (``scope.py``), exact global selection (``selection.py``), the cut
(``surgery.py``), activation statistics (``statistics.py``), the criteria registry
(``criteria.py``), schedules with the MAC-target solver (``schedules.py``) and the
per-model ``Pruner`` (``pruner.py``). Compensation, repair, masks and save/load follow.
"""

from prunetune.pruning.pruner import Pruner, StepResult
from prunetune.pruning.schedules import SCHEDULES, schedule_targets, solve_mac_target
from prunetune.pruning.criteria import CRITERIA, Criterion, ScoringContext, channel_costs, get_criterion
from prunetune.pruning.scope import PrunableGroup, build_graph, select_scope
from prunetune.pruning.selection import Selection, select_channels
from prunetune.pruning.statistics import ChannelStats, collect_stats
from prunetune.pruning.surgery import remove_channels

__all__ = ["SCHEDULES", "Pruner", "StepResult", "schedule_targets", "solve_mac_target", "CRITERIA", "ChannelStats", "Criterion", "PrunableGroup", "ScoringContext", "Selection", "build_graph",
           "channel_costs", "collect_stats", "get_criterion", "remove_channels", "select_channels", "select_scope"]
