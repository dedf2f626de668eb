"""The cost-rung scheduler for Ray Tune: the rule of ``prunetune/rungs.py`` deciding each reported step.

Ray asks the scheduler about each result before anything else sees it (the searcher, the
results store): the book records the levels the step passes, fsyncs them to the search's
``rungs.jsonl`` and answers STOP or CONTINUE. Ray's own ASHA keeps its rungs in memory and
Ray does not save a scheduler's state with the experiment, so after a killed driver it
would start its rungs empty; this one reads them back from the journal (a resumed driver
builds it on the home it opened, ``driver.resume_search``).

Built outside a search too (a benchmark): ``CostRungScheduler(RungBook(RungSettings(...)))``.
"""

from __future__ import annotations

from collections.abc import Callable

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from prunetune.rungs import STOP, RungBook


class CostRungScheduler(FIFOScheduler):
    # One result at a time: a stopped trial computes no steps ahead that would be thrown away.
    _supports_buffered_results = False

    def __init__(self, book: RungBook, number_of: Callable[[str], int | None] | None = None) -> None:
        super().__init__()
        self.book = book
        self.number_of = number_of  # Ray trial id -> Optuna trial number, for the records people read

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if "step" not in result:
            return TrialScheduler.CONTINUE
        number = self.number_of(trial.trial_id) if self.number_of is not None else None
        records = self.book.observe(trial.trial_id, result, number)
        return TrialScheduler.STOP if any(record.decision == STOP for record in records) else TrialScheduler.CONTINUE

    def stop_reason(self, trial_id: str) -> dict | None:
        """Why the trial was stopped, as the searcher keeps it on the Optuna trial; None if it was not."""
        record = self.book.stopped_by(trial_id)
        if record is None:
            return None
        return {"scheduler": "rungs", "rung": record.rung, "cost": self.book.settings.ratio_name,
                "level": record.level, "step": record.step,
                "accuracy": record.accuracy, "recorded": record.recorded, "better": record.better}

    def debug_string(self) -> str:
        settings = self.book.settings
        return (f"Cost rungs at {settings.ratio_name}s {list(settings.levels)}, reduction factor "
                f"{settings.reduction_factor:g}, grace {settings.grace}: {len(self.book.stops)} trials stopped.")
