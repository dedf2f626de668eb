"""Each pruning step of a trial, recorded in the Optuna study for optuna-dashboard and other study readers.

A trial's objective values are one step's (its most pruned feasible one), while the front is
taken over every step. A multi-objective study cannot take intermediate values
(``trial.report`` refuses), so each step goes into the trial's user attributes as it
arrives: ``step_<k>`` (its accuracy before and after recovery, MAC ratio, MACs, sparsity,
feasibility), ``feasible_steps`` and ``front_hypervolume`` (what the report ranks trials by
for importance, ``results/importance.py``; not for latency objectives, whose reference is the
slowest step of all the trials, known only once they are all in). The dashboard lists them on the trial's
page (values to four decimals: the exact ones are in ``results.parquet``), and the numeric
ones are targets of its plots and columns of its trials table.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
from ray import tune

from prunetune.objectives import Objective
from prunetune.results.importance import trial_front_volumes
from prunetune.study import TrialNumbers, study_storage

STEP_FIELDS = {"accuracy": "accuracy", "accuracy_before_recovery": "pre_accuracy", "mac_ratio": "mac_ratio",
               "macs": "macs", "sparsity": "sparsity", "feasible": "feasible"}  # attribute field -> report key
RANKED_BY = ("accuracy", "mac_ratio", "threshold", "feasible", "latency_ms")  # what a trial's hypervolume reads


class StepAttributes(tune.Callback):
    """Writes ``step_<k>``, ``front_hypervolume`` and ``feasible_steps`` into the reporting trial's attributes."""

    def __init__(self, study: optuna.Study, study_url: str | None, home: Path, objective: Objective) -> None:
        self.number = TrialNumbers(study)
        self.study_name, self.study_url, self.home, self.objective = study.study_name, study_url, home, objective
        self.storage = None  # opened on the first step; the study's own object is private to Optuna
        self.steps: dict[str, dict[int, dict]] = {}  # Ray trial id -> step -> what the hypervolume reads

    # Ray pickles callbacks into its experiment state: no storage connection, and a resumed
    # driver gives Ray callbacks built on the home it opened.
    def __getstate__(self) -> dict:
        return {**self.__dict__, "storage": None, "steps": {}}

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        number = self.number(trial.trial_id)
        if "step" not in result or number is None:
            return
        step = int(result["step"])
        steps = self.steps.setdefault(trial.trial_id, {})
        steps[step] = {key: result.get(key) for key in RANKED_BY} | {"trial": number}
        frame = pd.DataFrame(list(steps.values()))
        attributes = {f"step_{step}": {field: _shown(result.get(key)) for field, key in STEP_FIELDS.items()},
                      "feasible_steps": int(frame["feasible"].astype(bool).sum())}
        if not self.objective.measures_latency:  # latency has no baseline: no reference point shared by trials
            attributes["front_hypervolume"] = round(trial_front_volumes(frame, self.objective)[number], 8)
        if self.storage is None:
            self.storage = study_storage(self.study_url, self.home)
        storage = self.storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(self.study_name),
                                                                   number)
        try:
            for key, value in attributes.items():
                storage.set_trial_user_attr(trial_id, key, value)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # the study already closed this record (a failed trial's late report): its steps are in the store


def _shown(value):
    """Four decimals, as the dashboard prints each step on one line (exact values: results.parquet)."""
    return round(value, 4) if isinstance(value, float) else value
