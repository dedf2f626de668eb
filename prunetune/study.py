"""The Optuna study of a search: where it lives, stale-trial repair, and a summary.

The study lives in an RDB storage: by default a SQLite file in the search's home
folder, or any SQLAlchemy URL (``storage.study_url``). OptunaSearch needs an
``RDBStorage`` object, not a URL string.

The search writes the study and ``results/`` reads it, so this module imports Optuna
only: neither of them, nor Ray or torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.trial import TrialState

from prunetune.errors import UserError
from prunetune.objectives import Objective

RAY_ID = "ray_trial_id"  # the user attribute holding a trial's Ray id
STOPPED_BY = "stopped_by"  # the user attribute of a PRUNED trial a scheduler stopped: the scheduler's reason
ENQUEUED = "enqueued"  # the user attribute of a trial search.enqueue asked for: its index there
WARM_START = "warm_start"  # the user attribute of a trial another search ran (--warm-start): that search's name


STUDY_FILE = "study.db"  # the default study storage, in the search's home


def study_storage(url: str | None, home: Path, create: bool = False) -> optuna.storages.RDBStorage:
    """The study's storage; without ``create`` a missing or damaged default file is a ``UserError``.

    Only a new search creates it: an RDBStorage on a missing SQLite file would make an
    empty one, and the search would then start over as if no trial had run.
    """
    path = (home / STUDY_FILE).resolve()
    if url is None and not create and not path.is_file():
        raise UserError(f"{path} is missing: the study (which trials ran and finished) is lost; restore it from a "
                        "backup, or start a new search under another --name (`prunetune pareto` still reads the "
                        "results store)")
    try:
        return optuna.storages.RDBStorage(url or f"sqlite:///{path}")
    except sqlalchemy.exc.SQLAlchemyError as error:
        where = url if url else str(path)
        raise UserError(f"{where}: the study storage cannot be opened ({str(error).splitlines()[0]}); restore it "
                        "from a backup, or start a new search under another --name") from None


def open_study(storage: optuna.storages.RDBStorage, name: str, objective: Objective,
               sampler: optuna.samplers.BaseSampler | None = None, create: bool = False) -> optuna.Study:
    """The search's study; only a new search (``create``) makes one, any other caller needs it to exist."""
    directions = ["maximize" if mode == "max" else "minimize" for mode in objective.modes]
    try:
        with optuna_info_unlogged():
            study = optuna.create_study(storage=storage, study_name=name, directions=directions, sampler=sampler) \
                if create else optuna.load_study(study_name=name, storage=storage, sampler=sampler)
    except (KeyError, optuna.exceptions.DuplicatedStudyError):
        problem = "already holds" if create else "holds no"
        raise UserError(f"{storage.url}: the study storage {problem} study named {name!r}; "
                        + ("choose another --name" if create else "restore the study from a backup, or start a "
                           "new search under another --name")) from None
    with warnings.catch_warnings():  # experimental since Optuna 3.2, stable in use; not the user's concern
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(list(objective.labels))
    return study


@contextmanager
def optuna_info_unlogged() -> Iterator[None]:
    """Optuna's INFO lines off while prunetune works on a study; its warnings and errors still show.

    Optuna logs at INFO through its own stderr handler: "A new study created in RDB with
    name: ..." (``create_study``), "Using an existing study ..." (Ray's OptunaSearch opens the
    study with ``load_if_exists=True``) and "Trial N finished with values ..." on every
    ``tell``. prunetune prints what they would say in its own words (the search's lines,
    ``prunetune status``). ``optuna.logging.set_verbosity`` is Optuna's documented switch; the
    level in force before is restored, so a program that uses prunetune keeps its own.
    """
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(before, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def trial_number(study: optuna.Study, trial_id: str) -> int | None:
    """The Optuna trial number the searcher gave Ray trial ``trial_id``."""
    return trial_numbers(study).get(trial_id)


def trial_numbers(study: optuna.Study) -> dict[str, int]:
    """Ray trial id -> Optuna trial number, for every trial of the study (the newest record wins)."""
    return {frozen.user_attrs[RAY_ID]: frozen.number for frozen in study.get_trials(deepcopy=False)
            if RAY_ID in frozen.user_attrs}


def without_study(holder: object) -> dict:
    """A driver-side object's pickled state without its study.

    Ray pickles callbacks into ``tuner.pkl``; an unpickled study's storage connects to the
    database where the search started, which a moved home no longer has. A resumed driver
    gives Ray callbacks built on the home it opened (``internals.repoint_restored_tuner``).
    """
    return {**holder.__dict__, "study": None}


class TrialNumbers:
    """Ray trial id -> Optuna trial number, asked of the study until the searcher has recorded it."""

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self.known: dict[str, int] = {}

    def __getstate__(self) -> dict:
        return without_study(self)

    def __call__(self, trial_id: str) -> int | None:
        if trial_id not in self.known:
            number = trial_number(self.study, trial_id)
            if number is None:
                return None
            self.known[trial_id] = number
        return self.known[trial_id]


def error_key(number: int) -> str:
    return f"trial_{number}_error"


def steps_key(number: int) -> str:
    return f"trial_{number}_steps"  # a study attribute: the steps trial ``number`` has reported


def reported_steps(study: optuna.Study) -> dict[int, int]:
    """Trial number -> how many steps it reported, as the results recorder counted them."""
    return {int(key.split("_")[1]): int(value) for key, value in study.user_attrs.items()
            if key.startswith("trial_") and key.endswith("_steps")}


def own_trials(study: optuna.Study, states: tuple[TrialState, ...] | None = None) -> list[optuna.trial.FrozenTrial]:
    """The trials this search ran (or runs): not those a warm start copied in from another search."""
    return [t for t in study.get_trials(deepcopy=False, states=states) if WARM_START not in t.user_attrs]


def enqueue(study: optuna.Study, settings: list[dict]) -> None:
    """Queue partial settings (Optuna params) as WAITING trials: ``Study.ask`` hands them out first, in order.

    Called once, when the study is made: a resumed driver must not queue them again.
    """
    for index, params in enumerate(settings):
        study.enqueue_trial(params, user_attrs={ENQUEUED: index})


def requeue_interrupted(study: optuna.Study) -> int:
    """Queue again each enqueued setting whose only trial a dead driver left behind (failed as stale).

    A setting with a finished, running or waiting trial is not queued twice; one whose trial
    failed on its own (it raised) is not retried either, unless Ray re-runs it (--errored).
    """
    trials = study.get_trials(deepcopy=False)
    alive = {t.user_attrs[ENQUEUED] for t in trials if ENQUEUED in t.user_attrs
             and (t.state != TrialState.FAIL or not t.user_attrs.get("stale"))}
    again = {t.user_attrs[ENQUEUED]: t.system_attrs.get("fixed_params", {}) for t in trials
             if ENQUEUED in t.user_attrs and t.user_attrs.get("stale") and t.user_attrs[ENQUEUED] not in alive}
    for index, params in sorted(again.items()):
        study.enqueue_trial(params, user_attrs={ENQUEUED: index})
    return len(again)


def fail_stale_trials(study: optuna.Study, storage: optuna.storages.BaseStorage) -> int:
    """Mark trials left RUNNING by a driver that died as FAIL; they never count as finished.

    WAITING trials (``search.enqueue``'s, not yet handed out) stay queued for the resumed
    driver. ``storage`` is the study's: only the storage's public methods reach a trial by
    number without Optuna's private ids.
    """
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in stale:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        storage.set_trial_user_attr(trial_id, "stale", True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return len(stale)


@dataclass(frozen=True)
class StudySummary:
    complete: int
    no_feasible_step: int
    failed: int
    running: int
    best: list[optuna.trial.FrozenTrial]
    labels: list[str]
    errors: dict[int, str]
    stopped: int = 0  # PRUNED by a scheduler (cost rungs), not for want of a feasible step
    warm_started: int = 0  # trials of another search added by --warm-start (not counted above)

    @property
    def finished(self) -> int:
        return self.complete + self.no_feasible_step + self.stopped


def trial_counts(trials: list[optuna.trial.FrozenTrial]) -> dict[TrialState, int]:
    return {state: sum(t.state == state for t in trials) for state in TrialState}


def summarise(study: optuna.Study) -> StudySummary:
    """The search's own trials (a warm start's are the other search's: ``warm_started`` counts them)."""
    trials = own_trials(study)
    count = trial_counts(trials)
    stopped = sum(t.state == TrialState.PRUNED and STOPPED_BY in t.user_attrs for t in trials)
    best = best_trials(study, [t for t in trials if t.state == TrialState.COMPLETE])
    labels = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    return StudySummary(count[TrialState.COMPLETE], count[TrialState.PRUNED] - stopped, count[TrialState.FAIL],
                        count[TrialState.RUNNING], sorted(best, key=lambda t: t.values[-1]), labels,
                        {t.number: study.user_attrs.get(error_key(t.number), "stale: its driver died")
                         if t.user_attrs.get("stale") else study.user_attrs.get(error_key(t.number), "")
                         for t in trials if t.state == TrialState.FAIL}, stopped,
                        len(study.get_trials(deepcopy=False)) - len(trials))


def best_trials(study: optuna.Study, complete: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials of ``complete`` no other one dominates (``Study.best_trials``, over these trials only)."""
    signs = [1.0 if direction == optuna.study.StudyDirection.MAXIMIZE else -1.0 for direction in study.directions]

    def dominates(a: optuna.trial.FrozenTrial, b: optuna.trial.FrozenTrial) -> bool:
        better = [sign * (x - y) for sign, x, y in zip(signs, a.values, b.values)]
        return all(d >= 0 for d in better) and any(d > 0 for d in better)

    return [t for t in complete if not any(dominates(other, t) for other in complete)]
