"""The search driver: baseline once, then Ray Tune + Optuna over the pipeline; resume; status.

A search named NAME has a *home* folder (``prunetune/home.py``) holding ``search.json`` (the
job with its search space as data, the trial count), by default the study's SQLite file,
``results.parquet`` and its journal (every trial's every step, ``results/``) and, while a
driver runs, ``driver.json`` (its pid, host and heartbeat).

Ray runs with ``num_samples=-1``: the searcher (``StudySearch``) ends the search when
the study holds the requested number of finished trials, so failed or interrupted trials
are replaced and never counted twice.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import ray
from ray import tune

from prunetune.baseline import BatchCallback, EpochCallback, prepare_baseline
from prunetune.config import JobConfig
from prunetune.data.deployment import deployment_info
from prunetune.errors import UserError
from prunetune.home import (DEFAULT_STORAGE, SEARCH_FORMAT, DriverState, absolute_root, beat, driver_state,
                            experiment_exists, experiment_path, is_uri, open_home, search_command, search_home)
from prunetune.internals import repoint_restored_tuner, token_auth_notice_unlogged
from prunetune.objectives import OBJECTIVES
from prunetune.pipeline.run import accuracy_threshold
from prunetune.progress import SearchView
from prunetune.rungs import RUNGS_FILE, RungReport, rung_report
from prunetune.samplers import make_sampler
from prunetune.schedulers import make_scheduler
from prunetune.search_index import remember
from prunetune.search.printer import ProgressPrinter
from prunetune.search.quiet import library_output_off
from prunetune.search.recording import DriverBeat, ErrorRecorder, ResultsRecorder
from prunetune.search.scalars import ScalarWriter, ray_loggers
from prunetune.search.searcher import StudySearch, StudySearchGenerator
from prunetune.search.trial_steps import StepAttributes
from prunetune.search.trainable import baseline_files, trial
from prunetune.search.warm_start import WarmStart, read_warm_start
from prunetune.spaces import build_search
from prunetune.spaces.partial import optuna_params
from prunetune.spaces.schema import refuse_unsearchable
from prunetune.study import (StudySummary, TrialNumbers, enqueue, fail_stale_trials, open_study, optuna_info_unlogged,
                             requeue_interrupted,
                             study_storage, summarise)


@dataclass(frozen=True)
class SearchOutcome:
    name: str
    home: Path
    summary: StudySummary
    requested: int
    driver: DriverState | None = None  # status only: the driver that last ran the search
    storage: str = DEFAULT_STORAGE  # the storage root it lives under (absolute), for the commands that find it again
    rungs: RungReport | None = None  # per cost rung: trials recorded and stopped (search.scheduler: rungs)

    @property
    def interrupted(self) -> bool:
        return self.summary.finished < self.requested


def _init_ray(address: str | None) -> None:
    if ray.is_initialized():
        return
    try:
        # "local" starts a private Ray: without it ray.init() silently joins any cluster
        # `ray start` left running on this machine. --address joins one on purpose.
        with token_auth_notice_unlogged() if address is None else nullcontext():
            ray.init(address=address or "local", include_dashboard=False, configure_logging=False)
    except ConnectionError as error:
        raise UserError(f"--address {address}: cannot join the Ray cluster ({error}); "
                        "start one with `ray start --head`") from None


def refuse_unfit_resources(search) -> None:
    """A ``UserError`` when no node of the Ray cluster can hold one trial.

    Ray would wait forever ("No available node types can fulfill resource request").
    Checked against the nodes alive now: an autoscaling cluster that would add a larger
    node is refused too (set the per-trial resources to what its nodes have).
    """
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    for field, key in (("cpus_per_trial", "CPU"), ("gpus_per_trial", "GPU")):
        asked = getattr(search, field)
        largest = max((node.get(key, 0.0) for node in nodes), default=0.0)
        if asked > largest:
            has = f"its largest node has {largest:g}" if largest else "it has none"
            raise UserError(f"search.{field}: {asked:g} {key} per trial, but no node of the Ray cluster can give "
                            f"that ({has}); allowed: at most {largest:g}")


def _tuner_parts(config: JobConfig, space, name: str, home: Path, num_samples: int, baseline: Path,
                 create: bool = False, function: Callable[..., None] = trial):
    objective = OBJECTIVES.get(config.search.objectives)
    seed = config.seed if config.search.sampler_seed is None else config.search.sampler_seed
    sampler = make_sampler(config.search.sampler, seed, objective.multi)
    storage = study_storage(config.storage.study_url, home, create=create)
    study = open_study(storage, name, objective, sampler, create=create)
    # Built on the home opened here: a resumed driver reads the rung records back from it.
    scheduler = make_scheduler(config.search, objective, home / RUNGS_FILE, TrialNumbers(study))
    with optuna_info_unlogged():  # OptunaSearch opens the study again ("Using an existing study ...")
        searcher = StudySearch(space=space.define_by_run, metric=list(objective.metrics), mode=list(objective.modes),
                               sampler=sampler, study_name=name, storage=storage, total=num_samples,
                               max_concurrent=config.search.max_concurrent_trials,
                               stop_reason=getattr(scheduler, "stop_reason", None))
    trainable = tune.with_resources(
        tune.with_parameters(function, job=config.to_dict(), space=space, baseline=baseline_files(baseline),
                             baseline_folder=str(baseline)),
        {"cpu": config.search.cpus_per_trial, "gpu": config.search.gpus_per_trial})
    return study, searcher, scheduler, trainable


def _callbacks(study, home: Path, name: str, config: JobConfig, space, requested: int, verbose: int,
               view: SearchView | None, scheduler) -> list:
    results = ResultsRecorder(home, name, config.storage.root, config, space, study)
    objective = OBJECTIVES.get(config.search.objectives)
    printer = ProgressPrinter(study, config.storage.root, results.store, objective, requested, view,
                              getattr(scheduler, "stop_reason", None))
    return [ErrorRecorder(study), results, DriverBeat(home), ScalarWriter(home, study, announce=verbose > 0),
            *ray_loggers(), StepAttributes(study, config.storage.study_url, home, objective),
            *([printer] if verbose else [])]


def _fit(tuner, home: Path, verbose: int) -> None:
    try:
        with library_output_off(verbose):
            tuner.fit()
    finally:
        beat(home, ended=True)


def _take_name(root: str, name: str, home: Path) -> None:
    # The home's mkdir is the search's first act: of two drivers started at once, one wins.
    taken = UserError(f"a search named {name!r} already exists under {root}; resume it with "
                      f"`{search_command('resume', name, root)}` or choose another --name")
    if (home / "search.json").exists() or (is_uri(root) and experiment_exists(root, name)):
        raise taken
    home.parent.mkdir(parents=True, exist_ok=True)
    try:
        home.mkdir()
    except FileExistsError:
        if any(home.iterdir()):
            raise taken from None
    beat(home)


def _job_record(config: JobConfig, space) -> dict:
    """The job as search.json keeps it: its space as data, which ``build_search`` turns back into ``space``."""
    job = config.to_dict()
    job["search"]["space"] = space.to_dict()
    if build_search(job)[1] != space:
        raise UserError("search.space: a space built by hand cannot be saved as data; "
                        "build it with prunetune.spaces.load_search or build_search")
    return job


def run_search(config: JobConfig, space, name: str | None = None, num_samples: int | None = None,
               address: str | None = None, verbose: int = 1, on_epoch: EpochCallback | None = None,
               on_batch: BatchCallback | None = None, on_baseline: Callable[[dict], None] | None = None,
               view: SearchView | None = None, warm_start: str | None = None, storage: str | None = None,
               on_warm_start: Callable[[WarmStart], None] | None = None,
               function: Callable[..., None] = trial) -> SearchOutcome:
    """Start a new search; refuses a name that already has one (use ``resume_search``).

    ``function`` is what every trial runs, called as ``search.trainable.trial`` is (the
    pipeline, the default): a benchmark of the driver passes a stand-in that reports made-up
    steps in milliseconds (bench/driver_scale.py). ``prunetune resume`` always runs the pipeline.

    ``on_epoch`` / ``on_batch`` see each epoch / batch of the baseline when the search has to
    train it first; ``on_baseline`` its summary once it is ready (``Baseline.summary``; the
    threshold is None when ``stop.*`` is searched, each trial then has its own); ``view``
    shows the trials' lines and the search's status (default: printed lines; ``verbose=0``:
    nothing).

    ``warm_start``: the name of an earlier search of the same baseline whose finished trials
    the study gets before its first proposal (``search/warm_start.py``), found under
    ``storage`` as ``resume_search`` finds a search (default: this search's storage.root, then
    ./runs, then the index of searches); ``on_warm_start`` sees what was added and skipped.
    """
    refuse_unsearchable(space.names())  # load_search did already, unless the space was built by hand
    name = name or config.name
    root = absolute_root(config.storage.root)
    config = config.model_copy(update={"storage": config.storage.model_copy(update={"root": root})})
    home = search_home(root, name)
    job = _job_record(config, space)
    num_samples = num_samples or config.search.num_samples
    _refuse_unrun_enqueue(config, num_samples)
    warm = read_warm_start(warm_start, storage, config, space, name) if warm_start else None
    _take_name(root, name, home)
    try:
        _init_ray(address)  # first: a trial no node can hold is refused before the baseline trains
        refuse_unfit_resources(config.search)
        baseline = prepare_baseline(config, on_epoch, on_batch)  # once, on the driver
        if on_baseline is not None:
            searched_stop = any(path.startswith("stop.") for path in space.names())
            on_baseline(baseline.summary(None if searched_stop else accuracy_threshold(config, baseline.record.accuracy)))
        study, searcher, scheduler, trainable = _tuner_parts(config, space, name, home, num_samples,
                                                             baseline.directory, create=True, function=function)
        _first_trials(study, space, config, warm, on_warm_start)
    except BaseException:
        shutil.rmtree(home, ignore_errors=True)  # nothing but this driver's files: the name is free again
        raise
    (home / "search.json").write_text(json.dumps({"format": SEARCH_FORMAT, "name": name, "job": job,
                                                  "num_samples": num_samples, "baseline": str(baseline.directory),
                                                  "baseline_key": baseline.record.config_hash,
                                                  "deployment": deployment_info(baseline.splits),
                                                  **({"warm_start": warm.record()} if warm else {})},
                                                 indent=2))
    remember(name, root, home)
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=StudySearchGenerator(searcher), scheduler=scheduler, num_samples=-1,
                                    reuse_actors=config.search.reuse_actors),
        # verbose 1: our one line per step (ProgressPrinter); 2: Ray's own status and result tables too.
        run_config=tune.RunConfig(name=name, storage_path=root,
                                  verbose=0 if verbose < 2 else 1,
                                  failure_config=tune.FailureConfig(max_failures=config.search.max_retries),
                                  callbacks=_callbacks(study, home, name, config, space, num_samples, verbose, view,
                                                       scheduler)),
    )
    _fit(tuner, home, verbose)
    return SearchOutcome(name, home, summarise(study), num_samples, storage=root, rungs=_rungs(config, home))


def _refuse_unrun_enqueue(config: JobConfig, num_samples: int) -> None:
    queued = len(config.search.enqueue)
    if queued > num_samples:
        raise UserError(f"search.enqueue: {queued} settings, but the search runs {num_samples} trial"
                        f"{'' if num_samples == 1 else 's'} (search.num_samples / --num-samples): the last "
                        f"{queued - num_samples} would never run; allowed: at most {num_samples} settings")


def _first_trials(study, space, config: JobConfig, warm: WarmStart | None,
                  on_warm_start: Callable[[WarmStart], None] | None) -> None:
    """Before the first proposal: the warm start's finished trials, then search.enqueue's settings queued."""
    if warm is not None:
        study.add_trials(list(warm.trials))
        if on_warm_start is not None:
            on_warm_start(warm)
    enqueue(study, [optuna_params(space, settings) for settings in config.search.enqueue])


def resume_search(name: str, storage: str | None = None, resume_errored: bool = False, address: str | None = None,
                  verbose: int = 1, view: SearchView | None = None) -> SearchOutcome:
    """Continue a search: stale RUNNING trials are failed, Ray's experiment and the study restored.

    ``storage``: the root it lives under (default: ``./runs``, then the index of searches).
    Every path comes from the home found here, not from where the search started: a home
    moved to another folder or machine resumes with ``storage=NEW`` (``--storage NEW``).
    """
    saved = open_home(name, storage)
    driver = driver_state(saved.home)
    if driver is not None and driver.alive:
        raise UserError(f"{name}: its {driver.describe()}; stop it first or wait for it to end")
    config, space, meta, home, root = _moved(saved), saved.space, saved.meta, saved.home, saved.storage
    objective = OBJECTIVES.get(config.search.objectives)
    storage = study_storage(config.storage.study_url, home)
    study = open_study(storage, name, objective)
    fail_stale_trials(study, storage)
    requeue_interrupted(study)  # an enqueued setting whose trial the dead driver left runs again, once
    # Ray re-runs errored trials only when asked; the searcher must expect them so the
    # total stays exact (it learns the count from the study when Ray restores it).
    errored = [t for t in study.get_trials(deepcopy=False)
               if t.state.name == "FAIL" and not t.user_attrs.get("stale")] if resume_errored else []
    study.set_user_attr("expected_resumes", len(errored))
    _init_ray(address)
    refuse_unfit_resources(config.search)
    study, searcher, scheduler, trainable = _tuner_parts(config, space, name, home, meta["num_samples"],
                                                         saved.baseline_folder)
    tuner = tune.Tuner.restore(experiment_path(root, name), trainable, resume_unfinished=False,
                               resume_errored=resume_errored)
    # A URI root does not move; a local one may have (the home resumes from where it is now).
    # Ray keeps no scheduler state across a restore: this one has the rung records from the home.
    repoint_restored_tuner(tuner, StudySearchGenerator(searcher, None if is_uri(root) else (root, name)),
                           _callbacks(study, home, name, config, space, meta["num_samples"], verbose, view, scheduler),
                           scheduler)
    beat(home)
    remember(name, root, home)  # where it is now, if it moved
    _fit(tuner, home, verbose)
    return SearchOutcome(name, home, summarise(study), meta["num_samples"], storage=root, rungs=_rungs(config, home))


def _moved(saved) -> JobConfig:
    """The job with ``storage.root`` where the user found the search (it may have moved since)."""
    return saved.job.model_copy(update={"storage": saved.job.storage.model_copy(update={"root": saved.storage})})


def search_status(name: str, storage: str | None = None) -> SearchOutcome:
    """Finished / running / failed trials of the search ``name`` under ``storage`` (default as ``resume_search``)."""
    saved = open_home(name, storage)
    study = open_study(study_storage(saved.job.storage.study_url, saved.home), name,
                       OBJECTIVES.get(saved.job.search.objectives))
    return SearchOutcome(name, saved.home, summarise(study), saved.meta["num_samples"], driver_state(saved.home),
                         saved.storage, _rungs(saved.job, saved.home))


def _rungs(config: JobConfig, home: Path) -> RungReport | None:
    return rung_report(config.search, OBJECTIVES.get(config.search.objectives).cost, home)
