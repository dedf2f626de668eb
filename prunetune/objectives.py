"""What a search optimises: one registry of objectives, each declaring what it reads.

Every report row carries the trial's *best feasible* step (``best_accuracy``,
``best_macs``: see ``pipeline/rows.py``), so the objective values a trial ends with are
those of a step that met the accuracy threshold. A trial with no feasible step has no
objective values and is told to Optuna as PRUNED: it can never reach the study's best
trials, whatever its last (infeasible) step measured.

An objective names its metrics (``objective_<key>``: what the trainable reports and the
searcher reads), their directions, the Optuna metric labels, the row column each value
comes from (``best_<column>``), and ``cost``: the row column that says how pruned a step
is. The pipeline is handed the objective and reads ``cost`` from it (it measures every
step's latency when the cost is ``latency_ms``); nothing below the search reads
``config.search.objectives``. This module imports neither optuna nor torch, so config
validation and results readers can use it.

A goal with a ``measure`` is a value of the trial's whole curve so far instead of one
column: ``front_area`` is the hypervolume its feasible steps dominate (``curves.py``).
The trainable reports it after every step, and a single-objective study keeps each
step's value as the trial's intermediate value (``search/searcher.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from prunetune.curves import front_area, number
from prunetune.registry import OBJECTIVES

CurveMeasure = Callable[[Sequence[dict], str], "float | None"]  # (the trial's rows so far, cost) -> value

COSTS = ("macs", "latency_ms")  # row columns a step's cost can be ranked by


@dataclass(frozen=True)
class Goal:
    key: str  # metric objective_<key>
    column: str  # row column best_<column> of the best feasible step
    mode: str  # "max" / "min"
    label: str  # Optuna metric name shown by the study
    measure: CurveMeasure | None = None  # a value of the whole curve so far, instead of best_<column>


@dataclass(frozen=True)
class Objective:
    name: str
    goals: tuple[Goal, ...]
    cost: str = "macs"
    description: str = ""

    def __post_init__(self) -> None:
        if self.cost not in COSTS:
            raise ValueError(f"objective {self.name!r}: cost {self.cost!r}; allowed: {', '.join(COSTS)}")
        bad = [goal.mode for goal in self.goals if goal.mode not in ("max", "min")]
        if not self.goals or bad:
            raise ValueError(f"objective {self.name!r}: needs goals with mode max or min, got {bad or 'none'}")

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(f"objective_{goal.key}" for goal in self.goals)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(goal.mode for goal in self.goals)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(goal.label for goal in self.goals)

    @property
    def multi(self) -> bool:
        return len(self.goals) > 1

    @property
    def measures_latency(self) -> bool:
        return self.cost == "latency_ms"

    def values(self, row: dict, earlier: Sequence[dict] = ()) -> dict[str, float | None]:
        """The objective values after report row ``row``: its best feasible step's, None without one.

        ``earlier``: the trial's rows before ``row``, which a goal with a ``measure`` reads.
        """
        feasible = number(row.get("best_accuracy")) is not None and row.get("best_macs") is not None
        return {f"objective_{goal.key}": (goal.measure([*earlier, row], self.cost) if goal.measure
                                          else number(row.get(f"best_{goal.column}"))) if feasible else None
                for goal in self.goals}


def register_objective(objective: Objective) -> Objective:
    """Make ``objective`` selectable as ``search.objectives: <its name>``."""
    return OBJECTIVES.register(objective.name)(objective)


ACCURACY = Goal("accuracy", "accuracy", "max", "accuracy")
MACS = Goal("macs", "macs", "min", "macs")
register_objective(Objective("accuracy_macs", (ACCURACY, MACS),
                             description="maximise accuracy, minimise MACs: a Pareto front (two objectives)"))
register_objective(Objective("accuracy_latency", (ACCURACY, Goal("latency", "latency_ms", "min", "latency_ms")),
                             cost="latency_ms", description="maximise accuracy, minimise measured latency "
                             "(the latency section): a Pareto front; every step is timed"))
register_objective(Objective("min_macs", (MACS,), description="fewest MACs among feasible steps (one objective)"))
register_objective(Objective("max_accuracy", (ACCURACY,), description="highest accuracy (one objective)"))
FRONT_AREA = Goal("front_area", "front_area", "max", "front_area", measure=front_area)
register_objective(Objective("front_area", (FRONT_AREA,),
                             description="the area of the trial's own accuracy-vs-MAC-ratio front against "
                             "(threshold, 1.0): one objective over the whole curve (docs/search.md)"))
register_objective(Objective("front_area_latency", (FRONT_AREA,), cost="latency_ms",
                             description="front_area with the latency ratio as the cost (every step is timed)"))
