"""Every use of a dependency's private API, each behind one small function.

pyproject.toml pins Ray and Optuna exactly; each function here was read against the
source of the versions in ``CHECKED_AGAINST`` and says why no public API does its job.
``tests/test_internals.py`` fails when an installed version differs or a private name
below has gone or changed shape: re-read the named function's source in the new version,
adjust the wrapper, then update ``CHECKED_AGAINST``.

Nothing here imports Ray or Optuna at import time: ``results/`` uses this module too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import optuna

CHECKED_AGAINST = {"ray": "2.60.0", "optuna": "5.0.0"}

# Ray 2.60.0 logs "Checkpoint successfully created at: ..." at INFO through this private
# module's logger (``logging.getLogger(__name__)``), once per checkpoint; no option turns it off.
RAY_CHECKPOINT_LOGGER = "ray.train._internal.storage"


# Ray 2.60.0 logs "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled
# to opt out ..." at WARNING through this private module's logger whenever ``ray.init`` starts
# a new local cluster with RAY_AUTH_MODE unset (``enable_token_auth_by_default``). Setting
# RAY_AUTH_MODE=token says the same without the line, but only before ``import ray``: Ray reads
# it into its C++ config then, and set later the driver and the cluster it starts disagree
# ("Authentication token is missing or incorrect").
RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


# Ray 2.60.0's Tune has two console engines. The new one (``ray.tune.experimental.output``)
# prints, at every verbosity, 0 included, a "Configuration for experiment" box, "View detailed
# results here" and a TensorBoard hint (``TuneTerminalReporter.experiment_started``). This
# variable, read by ``get_air_verbosity`` each time ``fit`` builds its reporters, selects the
# legacy engine, which prints nothing at verbosity 0. Ray's docs name it only in passing
# ("If the RAY_AIR_NEW_OUTPUT=1 environment variable is set ..."), so it is pinned here.
TUNE_LEGACY_OUTPUT = {"RAY_AIR_NEW_OUTPUT": "0"}

# Optuna 5.0.0 warns (ExperimentalWarning) with this message each time a sampler is built with
# ``group=True``; the filter matches the message, so a reworded one would show again.
OPTUNA_GROUP_WARNING = "Argument ``group`` is an experimental feature"


@contextmanager
def token_auth_notice_unlogged() -> Iterator[None]:
    """Ray's notice that a new local cluster uses token authentication off; its errors still show."""
    logger = logging.getLogger(RAY_AUTH_LOGGER)
    before = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(before)


def searcher_study(searcher: Any) -> optuna.Study:
    """The study a Ray ``OptunaSearch`` asks and tells.

    Ray 2.60.0: ``OptunaSearch._setup_study`` creates it as ``_ot_study`` with the
    searcher's sampler, ``save``/``restore`` pickle it with the searcher. There is no
    public accessor, and a second study object on the same storage would ask a second
    sampler, not the one whose state the searcher carries across a resume.
    """
    return searcher._ot_study


def searcher_storage(searcher: Any) -> optuna.storages.BaseStorage:
    """The storage of the study a Ray ``OptunaSearch`` asks and tells.

    Ray 2.60.0: ``OptunaSearch.__init__`` keeps the ``storage`` it is given as ``_storage``;
    the study holds it only privately too. Through the storage's public methods the
    searcher reports intermediate values and keeps user attributes on a trial it knows
    by number (``Study.tell`` is the only public way to touch a trial that is not the
    ``optuna.Trial`` ``ask`` returned, and the searcher finds its trials again by Ray id).
    """
    return searcher._storage


def quiet_checkpoint_log() -> None:
    """Ray's per-checkpoint INFO line off in this process (a trial's worker)."""
    logging.getLogger(RAY_CHECKPOINT_LOGGER).setLevel(logging.WARNING)


def hypervolume(losses: np.ndarray, reference: np.ndarray) -> float:
    """The hypervolume dominated by ``losses`` (every column minimised) up to ``reference``.

    Optuna 5.0.0: ``optuna._hypervolume.compute_hypervolume(loss_vals, reference_point,
    assume_pareto=False)``, the WFG implementation its multi-objective samplers use.
    Optuna exposes hypervolume publicly only as a plot (``plot_hypervolume_history``).
    """
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(losses, reference, assume_pareto=False))


def repoint_restored_tuner(tuner: Any, search_alg: Any, callbacks: list, scheduler: Any) -> None:
    """Give a restored Tuner the searcher, callbacks and scheduler built from the home the user named.

    Ray 2.60.0: ``Tuner.restore`` unpickles ``TuneConfig`` (its ``search_alg`` and
    ``scheduler``) and ``RunConfig`` (its ``callbacks``) from ``tuner.pkl``
    (``TunerInternal._load_tuner_state``) and takes only a new trainable and param space;
    those pickles name the study and the store where the search started, so a moved home
    would write to the old paths, and the scheduler is the one pickled when the search
    began (``TuneController`` saves no scheduler state: its ``__getstate__`` drops
    ``_scheduler_alg``).
    """
    local = tuner._local_tuner
    local._tune_config.search_alg = search_alg
    local._tune_config.scheduler = scheduler
    local._run_config.callbacks = callbacks


OPTUNA_SEARCH_STUDY = ("_storage", "_ot_study")  # OptunaSearch's attributes that hold the study


def searcher_state(searcher: Any) -> dict:
    """An ``OptunaSearch``'s state to pickle, without its study and storage.

    Ray 2.60.0: ``OptunaSearch.save`` pickles ``__dict__`` whole and ``restore`` updates
    ``__dict__`` from it; an ``RDBStorage`` connects to its database when unpickled, so a
    pickled study names (and needs) the home where the search started.
    """
    return {key: value for key, value in searcher.__dict__.items() if key not in OPTUNA_SEARCH_STUDY}


def restore_searcher_state(searcher: Any, state: dict) -> None:
    """Take a saved state into a searcher built for this run, keeping its own study."""
    searcher.__dict__.update({key: value for key, value in state.items() if key not in OPTUNA_SEARCH_STUDY})
    searcher._ot_study.sampler = searcher._sampler  # the restored sampler: its random state carries on


def repoint_experiment(generator: Any, storage_path: str, name: str) -> None:
    """Make a restored ``SearchGenerator``'s experiment start new trials under ``storage_path/name``.

    Ray 2.60.0: on a resume ``tune.run`` skips ``add_configurations`` and
    ``SearchGenerator.set_state`` takes ``experiment`` from the pickled search-generator
    state, whose ``StorageContext`` (``storage_fs_path``) names the root where the search
    started. ``TuneController._restore_trials`` re-points restored trials, not new ones.
    """
    generator._experiment.storage.storage_fs_path = storage_path
    generator._experiment.storage.experiment_dir_name = name


def named_trial_spec(experiment_spec: dict, namer: Any) -> dict:
    """The experiment spec a ``SearchGenerator`` makes its next trial from, with ``namer`` naming
    the trial and its folder.

    Ray 2.60.0: ``Experiment.__init__`` keeps TuneConfig's ``trial_name_creator`` and
    ``trial_dirname_creator`` as keys of its ``spec``, and ``_create_trial_from_spec``
    (``ray.tune.experiment.config_parser``) hands them to ``Trial``, which calls them when the
    trial is made. The public options go into the spec only when the experiment is built,
    which a resumed search never does again (its generator's experiment is unpickled, with
    the creators as they were pickled); handing them to each trial's spec works for both.
    """
    return {**experiment_spec, "trial_name_creator": namer, "trial_dirname_creator": namer}
