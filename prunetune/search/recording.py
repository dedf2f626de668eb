"""Driver-side Ray Tune callbacks that keep a search's records: trial errors and the results store.

Both run in the driver process, so they see every trial's results as Ray receives them,
wherever the trial ran (a remote node's files may never reach the driver's disk).
"""

from __future__ import annotations

import time
from pathlib import Path

from ray import tune

from prunetune.config import JobConfig
from prunetune.home import BEAT_SECONDS, STORE_NAME, beat, experiment_path, is_uri
from prunetune.results.store import Store, make_row, rows_from_experiment
from prunetune.study import TrialNumbers, error_key, steps_key, trial_number, trial_numbers, without_study


def trial_error(trial) -> str:
    """The failed trial's error as Ray wrote it (its traceback), from the driver's copy."""
    path = Path(trial.error_file) if trial.error_file else None
    return path.read_text() if path is not None and path.exists() else "trial raised (no message recorded)"


def error_reason(error: str) -> str:
    """The one line that says why: the exception's own, last in Ray's traceback text."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def error_location(trial, root: str) -> str:
    """Where the trial's traceback lasts: ``error.txt`` in its folder of the experiment."""
    scheme = root.split("://", 1)[0] + "://" if is_uri(root) else ""
    name = Path(trial.error_file).name if trial.error_file else "error.txt"
    return f"{scheme}{trial.path}/{name}"


class ErrorRecorder(tune.Callback):
    """Writes a failed trial's error into the study, so the study says why it failed.

    A study attribute ``trial_<number>_error``: the Optuna trial itself is already told
    FAIL (and so frozen) when Ray calls back.
    """

    def __init__(self, study) -> None:
        self.study = study

    def __getstate__(self) -> dict:
        return without_study(self)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        message = trial_error(trial)
        number = trial_number(self.study, trial.trial_id)
        if number is not None:
            self.study.set_user_attr(error_key(number), message[-2000:])


class ResultsRecorder(tune.Callback):
    """Adds each reported step to the search's ``results.parquet`` as it arrives.

    The store writes when a write is due (see ``results/store.py``); this callback also
    writes on the controller's steps, when a trial ends and when the search ends, and at
    the start of a run (fresh or resumed) adds the rows Ray recorded that the store lacks.
    """

    def __init__(self, home: Path, name: str, root: str, job: JobConfig, space, study) -> None:
        self.store = Store(home / STORE_NAME)
        self.name, self.root, self.job, self.space, self.study = name, root, job, space, study
        self.number = TrialNumbers(study)
        self.resolved: dict[str, JobConfig] = {}  # a trial's config is fixed: apply the space once per trial
        self.steps: dict[str, set[int]] = {}  # Ray trial id -> the steps it reported

    def __getstate__(self) -> dict:
        return without_study(self)

    def setup(self, **info) -> None:
        # Rows Ray has and the store lacks (a store file deleted or copied back older): the
        # store's own rows win, since after a hard kill Ray's copies can be the older ones.
        experiment = Path(experiment_path(self.root, self.name))
        if is_uri(self.root) or not experiment.is_dir():
            return
        numbers = trial_numbers(self.study)
        self.store.merge(rows_from_experiment(experiment, self.name, self.job, self.space, numbers.get))
        self.store.flush()

    def _checkpoint(self, trial, result: dict) -> str | None:
        # Ray persists a reported checkpoint before the result reaches the driver, and names
        # its folder in the result; trial.path is the trial folder on the storage filesystem.
        name = result.get("checkpoint_dir_name")
        if not name:
            return None
        scheme = self.root.split("://", 1)[0] + "://" if is_uri(self.root) else ""
        return f"{scheme}{trial.path}/{name}"

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if "step" not in result:
            return
        if trial.trial_id not in self.resolved:
            self.resolved[trial.trial_id] = self.space.apply(self.job, trial.config)
        number = self.number(trial.trial_id)
        self.store.put(make_row(self.name, number, trial.trial_id, result, trial.config,
                                self.resolved[trial.trial_id], self._checkpoint(trial, result)))
        if number is not None:
            # The study's count lets a rebuilt store tell which steps it lost (results/experiment.py).
            if trial.trial_id not in self.steps:  # a resumed trial: its steps stored before count too
                self.steps[trial.trial_id] = {step for trial_id, step in self.store.rows if trial_id == trial.trial_id}
            self.steps[trial.trial_id].add(int(result["step"]))
            self.study.set_user_attr(steps_key(number), len(self.steps[trial.trial_id]))

    def on_step_end(self, iteration, trials, **info) -> None:
        self.store.write_if_due()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.store.flush()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.store.flush()

    def on_experiment_end(self, trials, **info) -> None:
        self.store.flush()


class DriverBeat(tune.Callback):
    """Keeps ``driver.json`` fresh, so ``prunetune status`` can tell a live driver from a dead one."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.next_beat = 0.0

    def on_step_end(self, iteration, trials, **info) -> None:
        if time.monotonic() >= self.next_beat:
            beat(self.home)
            self.next_beat = time.monotonic() + BEAT_SECONDS


def __getattr__(name: str):
    # The step printer lived here: older searches' tuner.pkl name it so, and resuming one unpickles it.
    if name == "ProgressPrinter":
        from prunetune.search.printer import ProgressPrinter

        return ProgressPrinter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
