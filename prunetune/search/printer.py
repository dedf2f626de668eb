"""The driver's callback that tells the user how a search goes (``prunetune/progress.py`` shows it)."""

from __future__ import annotations

import time

from optuna.trial import TrialState
from ray import tune

from prunetune.objectives import Objective
from prunetune.progress import PrintedView, SearchStatus, SearchView, best_step
from prunetune.search.recording import error_location, error_reason, trial_error
from prunetune.study import TrialNumbers, own_trials, trial_counts, without_study


class ProgressPrinter(tune.Callback):
    """One line per reported step and per finished or failed trial, and the search's status (instead of
    Ray's result tables). ``store`` is the results store the driver writes (its rows, earlier
    drivers' included, give the best step so far)."""

    view: SearchView | None = None  # a printer pickled in Ray's experiment state shows nothing
    root = ""  # a printer pickled in an older search's experiment state has none
    stop_reason = None  # nor this: the scheduler's reason for stopping a trial early

    def __init__(self, study, root: str, store, objective: Objective, requested: int,
                 view: SearchView | None = None, stop_reason=None) -> None:
        self.study, self.number = study, TrialNumbers(study)
        self.root, self.store, self.objective, self.requested = root, store, objective, requested
        self.stop_reason = stop_reason
        self.view = view or PrintedView()
        self.started, self.finished_before, self.counts = time.monotonic(), 0, None

    def __getstate__(self) -> dict:
        # Ray pickles callbacks into tuner.pkl; a resumed driver builds its own (internals.repoint_restored_tuner).
        return {**without_study(self), "number": None, "store": None, "view": None, "counts": None, "stop_reason": None}

    def _label(self, trial) -> str:
        number = self.number(trial.trial_id)
        return f"trial {number}" if number is not None else f"trial {trial.trial_id}"

    def _count(self) -> None:
        # Trial states change when a trial is asked, starts or ends, not when it reports a step.
        self.counts = trial_counts(own_trials(self.study))  # a warm start's trials are not this search's

    def _status(self, trial_ended: bool = False, count: bool = True) -> None:
        if not (trial_ended or self.view.live):
            return  # a printed view shows the status when a trial ends
        if count or self.counts is None:
            self._count()
        finished = self.counts[TrialState.COMPLETE] + self.counts[TrialState.PRUNED]
        elapsed = time.monotonic() - self.started
        done_here, left = finished - self.finished_before, self.requested - finished
        remaining = elapsed / done_here * left if done_here > 0 and left > 0 else None
        self.view.status(SearchStatus(self.requested, finished, self.counts[TrialState.RUNNING],
                                      self.counts[TrialState.FAIL], best_step(self.store.rows.values(), self.objective),
                                      elapsed, remaining))

    def setup(self, **info) -> None:
        if self.view is None:
            return
        self._count()
        self.started = time.monotonic()
        self.finished_before = self.counts[TrialState.COMPLETE] + self.counts[TrialState.PRUNED]
        self.view.start()
        self._status()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        if self.view is not None:
            self._status()

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if self.view is None or "step" not in result:
            return
        verdict = "ok" if result["feasible"] else "below threshold, trial stops"
        self.view.line(f"{self._label(trial)} step {result['step']}: sparsity {result['sparsity']:.3f}, "
                       f"MACs {result['mac_ratio']:.1%}, accuracy {result['pre_accuracy']:.4f} -> "
                       f"{result['accuracy']:.4f} ({verdict}), {result['seconds_total']:.1f}s")
        self._status(count=False)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        if self.view is None:
            return
        stopped = self.stop_reason(trial.trial_id) if self.stop_reason is not None else None
        if stopped:
            self.view.line(f"{self._label(trial)} stopped at rung {stopped['rung']} ({stopped['cost']} "
                           f"{stopped['level']:g}): accuracy {stopped['accuracy']:.4f} there, "
                           f"{stopped['better']} of {stopped['recorded']} trials ahead")
        else:
            self.view.line(f"{self._label(trial)} finished")
        self._status(trial_ended=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        if self.view is None:
            return
        # One line, not Ray's traceback (TUNE_PRINT_ALL_TRIAL_ERRORS=0, search/quiet.py); it stays in the file.
        self.view.line(f"{self._label(trial)} failed: {error_reason(trial_error(trial))} "
                       f"(traceback: {error_location(trial, self.root)})")
        self._status(trial_ended=True)

    def on_experiment_end(self, trials, **info) -> None:
        if self.view is not None:
            self.view.stop()
