"""Ray Tune trial schedulers by name: ``search.scheduler`` picks one; ``register_scheduler`` adds one.

A scheduler entry is a function ``(search, objective, journal, number_of) ->
ray.tune.schedulers.TrialScheduler``: the job's ``search`` section, its objective (whose
``cost`` says what a cost level is), the file in the search home where the scheduler may
keep what must outlive a killed driver (None outside a search), and Ray trial id ->
Optuna trial number. Ray is imported inside each entry, so config validation, which
checks the name against this registry, does not load it.

A scheduler that stops trials early answers ``stop_reason(trial_id) -> dict | None``: the
searcher then tells Optuna such a trial PRUNED and keeps the dict on it as the user
attribute ``stopped_by`` (docs/search.md). An entry made with ``reads_rungs=True`` reads
``search.rungs``; that section set to anything but its defaults under another scheduler
is refused, since it would change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prunetune.registry import SCHEDULERS

SchedulerFactory = Callable[..., Any]


def register_scheduler(name: str, reads_rungs: bool = False) -> Callable[[SchedulerFactory], SchedulerFactory]:
    def decorator(entry: SchedulerFactory) -> SchedulerFactory:
        entry.reads_rungs = reads_rungs  # type: ignore[attr-defined]
        return SCHEDULERS.register(name)(entry)

    return decorator


def make_scheduler(search, objective, journal, number_of):
    return SCHEDULERS.get(search.scheduler, "search.scheduler")(search, objective, journal, number_of)


@register_scheduler("fifo")
def fifo(search, objective, journal, number_of):
    """Every trial runs its whole schedule (or until a step falls below the threshold)."""
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


@register_scheduler("rungs", reads_rungs=True)
def rungs(search, objective, journal, number_of):
    """Cost rungs (search.rungs): a trial behind at a cost level is stopped (docs/search.md)."""
    from prunetune.rungs import RungBook, settings_of
    from prunetune.search.rungs import CostRungScheduler

    return CostRungScheduler(RungBook(settings_of(search, objective.cost), journal), number_of)
