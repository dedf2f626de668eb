"""The search driver: baseline once, then Ray Tune + Optuna over the pipeline; resume; status.

A search named NAME has a *home* folder (``prunetune/home.py``) holding ``search.json`` (the
job, the objective, the trial count), ``space.pkl`` (the search space), by default the
study's SQLite file, and ``results.parquet`` (every trial's every step, ``results/``).

Ray runs with ``num_samples=-1``: the searcher (``StudySearch``) ends the search when
the study holds the requested number of finished trials, so failed or interrupted trials
are replaced and never counted twice.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import ray
from ray import tune

from prunetune.baseline import EpochCallback, prepare_baseline
from prunetune.config import JobConfig
from prunetune.errors import UserError
from prunetune.home import absolute_root, experiment_exists, experiment_path, open_home, search_home
from prunetune.objectives import OBJECTIVES
from prunetune.samplers import make_sampler
from prunetune.search.recording import ErrorRecorder, ProgressPrinter, ResultsRecorder, trial_tracebacks_unprinted
from prunetune.search.searcher import StudySearch
from prunetune.search.trainable import baseline_files, trial
from prunetune.spaces.schema import refuse_unsearchable
from prunetune.study import StudySummary, fail_stale_trials, open_study, study_storage, summarise


@dataclass(frozen=True)
class SearchOutcome:
    name: str
    home: Path
    summary: StudySummary
    requested: int

    @property
    def interrupted(self) -> bool:
        return self.summary.finished < self.requested


def _init_ray(address: str | None) -> None:
    if ray.is_initialized():
        return
    try:
        # "local" starts a private Ray: without it ray.init() silently joins any cluster
        # `ray start` left running on this machine. --address joins one on purpose.
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


def _tuner_parts(config: JobConfig, space, name: str, home: Path, num_samples: int, files: dict[str, bytes]):
    objective = OBJECTIVES.get(config.search.objectives)
    seed = config.seed if config.search.sampler_seed is None else config.search.sampler_seed
    sampler = make_sampler(config.search.sampler, seed, objective.multi)
    storage = study_storage(config.storage.study_url, home)
    study = open_study(storage, name, objective, sampler)
    searcher = StudySearch(space=space.define_by_run, metric=list(objective.metrics), mode=list(objective.modes),
                           sampler=sampler, study_name=name, storage=storage, total=num_samples,
                           max_concurrent=config.search.max_concurrent_trials)
    trainable = tune.with_resources(
        tune.with_parameters(trial, job=config.to_dict(), space=space, baseline=files),
        {"cpu": config.search.cpus_per_trial, "gpu": config.search.gpus_per_trial})
    return study, searcher, trainable


def run_search(config: JobConfig, space, name: str | None = None, num_samples: int | None = None,
               address: str | None = None, verbose: int = 1, on_epoch: EpochCallback | None = None) -> SearchOutcome:
    """Start a new search; refuses a name that already has one (use ``resume_search``).

    ``on_epoch`` sees each epoch of the baseline when the search has to train it first.
    """
    refuse_unsearchable(space.names())  # load_search did already, unless the space was built by hand
    name = name or config.name
    root = absolute_root(config.storage.root)
    config = config.model_copy(update={"storage": config.storage.model_copy(update={"root": root})})
    home = search_home(root, name)
    if (home / "search.json").exists() or experiment_exists(root, name):
        raise UserError(f"a search named {name!r} already exists under {root}; resume it with "
                        f"`prunetune resume {name}` or choose another --name")
    num_samples = num_samples or config.search.num_samples
    _init_ray(address)  # before the baseline and the home: a refused search leaves nothing behind
    refuse_unfit_resources(config.search)
    baseline = prepare_baseline(config, on_epoch)  # once, on the driver
    home.mkdir(parents=True, exist_ok=True)
    (home / "space.pkl").write_bytes(pickle.dumps(space))
    (home / "search.json").write_text(json.dumps({"name": name, "job": config.to_dict(), "num_samples": num_samples,
                                                  "baseline": str(baseline.directory)}, indent=2))
    study, searcher, trainable = _tuner_parts(config, space, name, home, num_samples,
                                              baseline_files(baseline.directory))
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=-1,
                                    reuse_actors=config.search.reuse_actors),
        # verbose 1: our one line per step (ProgressPrinter); 2: Ray's own status and result tables too.
        run_config=tune.RunConfig(name=name, storage_path=root,
                                  verbose=0 if verbose < 2 else 1,
                                  failure_config=tune.FailureConfig(max_failures=config.search.max_retries),
                                  callbacks=[ErrorRecorder(study), ResultsRecorder(home, name, root, config, space, study),
                                             *([ProgressPrinter(study, root)] if verbose else [])]),
    )
    with trial_tracebacks_unprinted():
        tuner.fit()
    return SearchOutcome(name, home, summarise(study), num_samples)


def resume_search(name: str, root: str = "runs", resume_errored: bool = False, address: str | None = None,
                  verbose: int = 1) -> SearchOutcome:
    """Continue a search: stale RUNNING trials are failed, Ray's experiment and the study restored."""
    saved = open_home(name, root)
    config, space, meta, home, root = saved.job, saved.space, saved.meta, saved.home, saved.root
    objective = OBJECTIVES.get(config.search.objectives)
    storage = study_storage(config.storage.study_url, home)
    study = open_study(storage, name, objective)
    fail_stale_trials(study, storage)
    # Ray re-runs errored trials only when asked; the searcher must expect them so the
    # total stays exact (it learns the count from the study when Ray restores it).
    errored = [t for t in study.get_trials(deepcopy=False)
               if t.state.name == "FAIL" and not t.user_attrs.get("stale")] if resume_errored else []
    study.set_user_attr("expected_resumes", len(errored))
    _init_ray(address)
    refuse_unfit_resources(config.search)
    files = {p.name: p.read_bytes() for p in Path(meta["baseline"]).iterdir() if p.is_file()} \
        if Path(meta["baseline"]).exists() else {}
    _, _, trainable = _tuner_parts(config, space, name, home, meta["num_samples"], files)
    tuner = tune.Tuner.restore(experiment_path(root, name), trainable, resume_unfinished=False,
                               resume_errored=resume_errored)
    with trial_tracebacks_unprinted():
        tuner.fit()
    return SearchOutcome(name, home, summarise(study), meta["num_samples"])


def search_status(name: str, root: str = "runs") -> SearchOutcome:
    saved = open_home(name, root)
    study = open_study(study_storage(saved.job.storage.study_url, saved.home), name,
                       OBJECTIVES.get(saved.job.search.objectives))
    return SearchOutcome(name, saved.home, summarise(study), saved.meta["num_samples"])
