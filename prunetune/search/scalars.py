"""TensorBoard curves of a search, written by the driver under its home: per epoch and per step.

``<home>/tensorboard/trial_<N>/`` holds one TensorBoard run per trial, named by
prunetune's trial number (what ``pareto`` and ``export`` show):

- ``epoch/*``: every training epoch of the trial (sparse pretraining, each step's recovery,
  the final fine-tuning) numbered along the trial: ``val_accuracy``, ``train_loss``,
  ``train_accuracy``, ``lr``, and ``mac_ratio`` (the model's MACs in that epoch, as a share
  of the baseline's: a staircase that marks each cut);
- ``step/*``: one point per pruning step: ``accuracy`` (after recovery),
  ``accuracy_before_recovery``, ``threshold``, ``mac_ratio``, ``param_ratio``,
  ``sparsity``, ``seconds`` (and ``latency_ms`` when measured);
- a ``settings`` text: the trial's searched values.

The epochs travel with the next step's report (``EPOCHS_KEY``), so the files are written
where the results arrive, whatever node ran the trial and whatever the storage: the
curves of a step appear when the step ends. Ray's own TensorBoard logger is off
(``search/quiet.py``): it wrote one point per step into each trial folder, with
Ray's bookkeeping as scalars, and printed a ``--logdir`` in a temporary folder.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from prunetune.study import TrialNumbers

TENSORBOARD_DIR = "tensorboard"  # in the search's home
EPOCHS_KEY = "recovery_epochs"  # a step report's epochs since the previous report
EPOCH_SCALARS = ("val_accuracy", "train_loss", "train_accuracy", "lr")
STEP_SCALARS = {"accuracy": "accuracy", "accuracy_before_recovery": "pre_accuracy", "threshold": "threshold",
                "mac_ratio": "mac_ratio", "param_ratio": "param_ratio", "sparsity": "sparsity",
                "seconds": "seconds_total", "latency_ms": "latency_ms"}  # tag -> report key


def tensorboard_hint(home: Path) -> str:
    folder = (home / TENSORBOARD_DIR).resolve()
    missing = "" if importlib.util.find_spec("tensorboard") else \
        " (TensorBoard is not installed: pip install 'prunetune[tensorboard]')"
    return f"TensorBoard (every trial's epochs and steps): tensorboard --logdir {folder}{missing}"


def ray_loggers() -> list:
    """Ray's result files (``result.json`` is what a lost store is rebuilt from), without its TensorBoard logger."""
    return [CSVLoggerCallback(), JsonLoggerCallback()]


class ScalarWriter(tune.Callback):
    """Writes each trial's epochs and steps as TensorBoard scalars as its reports arrive."""

    def __init__(self, home: Path, study, announce: bool = True) -> None:
        self.folder = home / TENSORBOARD_DIR
        self.number = TrialNumbers(study)
        self.announce = announce
        self.writers: dict[str, object] = {}  # Ray trial id -> its SummaryWriter
        self.epochs: dict[str, int] = {}  # Ray trial id -> epochs written
        self.mac_ratio: dict[str, float] = {}  # Ray trial id -> its model's MAC ratio after the last step

    # Ray pickles callbacks into its experiment state: open writers cannot be, and a resumed
    # driver opens new ones (TensorBoard reads every event file of a run folder).
    def __getstate__(self) -> dict:
        return {**self.__dict__, "writers": {}, "epochs": {}, "mac_ratio": {}}  # TrialNumbers pickles without its study

    def setup(self, **info) -> None:
        if self.announce:
            print(tensorboard_hint(self.folder.parent))

    def _writer(self, trial):
        if trial.trial_id not in self.writers:
            from tensorboardX import SummaryWriter

            number = self.number(trial.trial_id)
            run = f"trial_{number}" if number is not None else f"ray_{trial.trial_id}"
            writer = SummaryWriter(str(self.folder / run), flush_secs=30)
            settings = "\n".join(f"| {name} | {value} |" for name, value in sorted(trial.config.items()))
            writer.add_text("settings", f"| setting | value |\n| --- | --- |\n{settings}")
            self.writers[trial.trial_id] = writer
        return self.writers[trial.trial_id]

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if "step" not in result:
            return
        writer = self._writer(trial)
        records = result.get(EPOCHS_KEY) or []
        # The step's own recovery epochs are its last epochs_run; any before them (sparse
        # pretraining) trained the model as the previous step left it.
        recovering = len(records) - int(result.get("epochs_run") or 0)
        before = self.mac_ratio.get(trial.trial_id, 1.0)
        for index, record in enumerate(records):
            self.epochs[trial.trial_id] = epoch = self.epochs.get(trial.trial_id, 0) + 1
            for name in EPOCH_SCALARS:
                _scalar(writer, f"epoch/{name}", record.get(name), epoch)
            _scalar(writer, "epoch/mac_ratio", result.get("mac_ratio") if index >= recovering else before, epoch)
        self.mac_ratio[trial.trial_id] = result.get("mac_ratio", before)
        for tag, key in STEP_SCALARS.items():
            _scalar(writer, f"step/{tag}", result.get(key), int(result["step"]))
        writer.flush()

    def _close(self, trial) -> None:
        writer = self.writers.pop(trial.trial_id, None)
        if writer is not None:
            writer.close()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self._close(trial)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._close(trial)

    def on_experiment_end(self, trials, **info) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()


def _scalar(writer, tag: str, value, step: int) -> None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        writer.add_scalar(tag, float(value), step)
