"""OptunaSearch whose study, not a pickle, is the record of which trial is which.

Ray's OptunaSearch keeps Ray trial id -> Optuna trial in memory and pickles it with the
experiment. After a hard kill that pickle can be older than the study, and the study
keeps trials stuck RUNNING. Here every Optuna trial carries its Ray trial id as a user
attribute, lookups go to the study, and the searcher itself decides when the search is
done: it stops suggesting once the study holds ``total`` finished trials (COMPLETE, or
PRUNED for "no feasible step") plus those in flight. Failed and stale trials do not
count, so the search ends with exactly ``total`` finished trials, each counted once.

A trial a scheduler stopped (``search.scheduler: rungs``) is told PRUNED, with the
scheduler's reason as its user attribute ``stopped_by``, whatever its last result holds:
Ray hands such a trial over with its last result, whose best feasible step is only the
best *so far*, and as COMPLETE that partial value would sit on Optuna's front and steer
the sampler (docs/search.md). A single-objective study also keeps every step's objective
value as the trial's intermediate value (Optuna refuses them in multi-objective studies).

Concurrency is limited here too, not with TuneConfig's ``max_concurrent_trials``: that
wraps the searcher in a ConcurrencyLimiter whose pickled set of live trials survives a
killed driver, and a resumed search would then wait for trials that no longer exist.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import SearchGenerator, Searcher
from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils.util import unflatten_dict

from prunetune.internals import (named_trial_spec, repoint_experiment, restore_searcher_state, searcher_state,
                                 searcher_storage, searcher_study)
from prunetune.study import RAY_ID, STOPPED_BY, own_trials

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


class StudySearch(OptunaSearch):
    def __init__(self, space: Callable[[optuna.Trial], None], *, total: int, max_concurrent: int,
                 stop_reason: Callable[[str], dict | None] | None = None, **kwargs: Any) -> None:
        super().__init__(space=space, **kwargs)
        self.define_by_run = space
        self.total, self.max_concurrent = total, max_concurrent
        self.stop_reason = stop_reason  # the scheduler's: why it stopped a trial, None if it did not
        self._live: dict[str, int] = {}  # Ray trial id -> Optuna trial number, for the trials in flight
        self.expected_resumes = 0  # errored trials Ray re-runs on a resume, not suggested here

    @property
    def study(self) -> optuna.Study:
        return searcher_study(self)

    # No pickle of the searcher holds the study: Ray's tuner.pkl (through __getstate__) and its
    # searcher state (save) would then name the home where the search started, and a moved
    # home could not resume. A resumed driver gives Ray a searcher built on the home it opened.
    # The scheduler's stop_reason stays out too: a restored searcher keeps the one it was built with.
    def __getstate__(self) -> dict:
        return {key: value for key, value in searcher_state(self).items() if key != "stop_reason"}

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as file:
            pickle.dump(self.__getstate__(), file)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as file:
            restore_searcher_state(self, pickle.load(file))
        # The pickle's in-flight set belongs to a driver that is gone: its trials are
        # failed (stale) in the study, and only the errored ones Ray re-runs come back.
        self._live = {}
        self.expected_resumes = int(self.study.user_attrs.get("expected_resumes", 0))

    def finished_count(self) -> int:
        # A warm start's trials (another search's) are in the study but not among this search's trials.
        return len(own_trials(self.study, FINISHED_STATES))

    def failed_count(self) -> int:
        return sum(not t.user_attrs.get("stale") for t in own_trials(self.study, (TrialState.FAIL,)))

    def suggest(self, trial_id: str) -> dict | None:
        done = self.finished_count()
        # Three failures per requested trial means the space or the job is broken:
        # replacing failures for ever would never end.
        if done >= self.total or self.failed_count() >= 3 * self.total:
            return Searcher.FINISHED
        if done + len(self._live) + self.expected_resumes >= self.total:
            return None  # enough in flight; ask again when one ends (a failure needs a replacement)
        if len(self._live) >= self.max_concurrent:
            return None
        ot_trial = self.study.ask()
        ot_trial.set_user_attr(RAY_ID, trial_id)
        # The space only suggests, so the trial's params are what it suggested; the trial is
        # found again through RAY_ID, not through OptunaSearch's in-memory map.
        self.define_by_run(ot_trial)
        self._live[trial_id] = ot_trial.number
        return unflatten_dict(ot_trial.params)

    def _find(self, trial_id: str) -> optuna.trial.FrozenTrial | None:
        matches = [t for t in self.study.get_trials(deepcopy=False) if t.user_attrs.get(RAY_ID) == trial_id]
        return matches[-1] if matches else None

    def number_of(self, trial_id: str) -> int | None:
        """The study's number of Ray trial ``trial_id`` (None before ``suggest`` made it)."""
        if trial_id in self._live:
            return self._live[trial_id]
        frozen = self._find(trial_id)
        return frozen.number if frozen is not None else None

    def _trial_key(self, number: int) -> tuple[optuna.storages.BaseStorage, int]:
        storage = searcher_storage(self)
        study_id = storage.get_study_id_from_name(self.study.study_name)
        return storage, storage.get_trial_id_from_study_id_trial_number(study_id, number)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """A single-objective study keeps the step's objective value as the trial's intermediate value."""
        number = self._live.get(trial_id)
        if len(self.metric) != 1 or number is None or not result or "step" not in result:
            return  # Optuna refuses intermediate values in multi-objective studies
        value = result.get(self.metric[0])
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            storage, key = self._trial_key(number)
            storage.set_trial_intermediate_value(key, int(result["step"]), float(value))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if not error:  # the result a scheduler stopped the trial on reaches the searcher only here
            self.on_trial_result(trial_id, result)
        if trial_id in self._live:
            del self._live[trial_id]
        elif self.expected_resumes:
            self.expected_resumes -= 1
        frozen = self._find(trial_id)
        if frozen is None:
            return
        values = None
        if result and not error:
            values = [result.get(metric) for metric in self.metric]
            if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values):
                values = None
        stopped = None if error or self.stop_reason is None else self.stop_reason(trial_id)
        attributes = {STOPPED_BY: stopped} if stopped else {}
        state = TrialState.FAIL if error else (TrialState.COMPLETE if values is not None and not stopped
                                               else TrialState.PRUNED)
        if frozen.state == TrialState.RUNNING:
            for key, value in attributes.items():
                storage, trial_key = self._trial_key(frozen.number)
                storage.set_trial_user_attr(trial_key, key, value)
            self.study.tell(frozen.number, values if state == TrialState.COMPLETE else None, state=state)
        elif frozen.state == TrialState.FAIL and state != TrialState.FAIL:
            # A failed trial resumed by Ray and now finished: a new record, the old stays failed.
            self.study.add_trial(optuna.trial.create_trial(
                params=frozen.params, distributions=frozen.distributions,
                values=values if state == TrialState.COMPLETE else None, state=state,
                user_attrs={**frozen.user_attrs, **attributes, "resumed_from": frozen.number}))


class TrialNamer:
    """Names a Ray trial and its folder after the study's trial number: ``trial_<number>_<ray id>``.

    Ray numbers trial folders with its search generator's counter, from 1 and restarted from
    its pickled state on a resume; prunetune's trials are the study's, numbered from 0, and
    those numbers are what ``status``, ``pareto`` and ``export --trial`` show. Ray calls the
    namer once, when it makes a trial (just after ``suggest`` recorded it in the study). A
    namer Ray pickled (in a trial's saved state) keeps no searcher and names by the Ray id
    alone: never by a number it cannot look up.
    """

    searcher: StudySearch | None = None

    def __init__(self, searcher: StudySearch) -> None:
        self.searcher = searcher

    def __getstate__(self) -> dict:
        return {}

    def __deepcopy__(self, memo: dict) -> TrialNamer:
        return self  # SearchGenerator deep-copies the spec for each trial: the copy must still ask the study

    def __call__(self, trial) -> str:
        number = self.searcher.number_of(trial.trial_id) if self.searcher is not None else None
        return f"trial_{trial.trial_id}" if number is None else f"trial_{number}_{trial.trial_id}"


class StudySearchGenerator(SearchGenerator):
    """Ray's wrapper of the searcher: each trial named by its study number (``TrialNamer``).

    For a resume, ``moved_to`` (storage path, name) makes new trials go where the home is now.
    """

    def __init__(self, searcher: StudySearch, moved_to: tuple[str, str] | None = None) -> None:
        super().__init__(searcher)
        self.moved_to = moved_to
        self.namer = TrialNamer(searcher)

    def create_trial_if_possible(self, experiment_spec: dict):
        return super().create_trial_if_possible(named_trial_spec(experiment_spec, self.namer))

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        if self.moved_to is not None:
            repoint_experiment(self, *self.moved_to)
