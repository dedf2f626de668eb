"""The search driver at scale, on SIMULATED trials: seconds per result, per suggestion, memory, study size.

    # the real driver (Ray Tune, StudySearch over the SQLite study, cost rungs, results store)
    .venv/bin/python bench/driver_scale.py driver [--trials 2000] [--sampler tpe] [--window 250]
    # the sampler alone (Optuna ask / define-by-run / tell, no Ray) as the study grows
    .venv/bin/python bench/driver_scale.py sampler [--trials 2000] [--samplers tpe,tpe_fast,random]

Every trial is the stand-in of ``bench/synthetic_trial.py`` (a made-up accuracy-vs-MACs curve
reported in milliseconds, up to 10 steps): what is measured is everything around the trials.

``driver``: one search of ``--trials`` trials through ``run_search(..., function=trial)`` on
``bench/configs/driver_scale.yaml``. The sampler is wrapped so that every suggestion's
sampler time is recorded (``infer_relative_search_space`` + ``sample_relative`` +
``sample_independent``: the sampler's own work, not the storage's); a thread samples the
driver's RSS and the study database's size once a second. Per window of ``--window`` trials:
driver seconds per result (wall time between the window's first and last suggestion over
the results of its trials), sampler ms per suggestion, RSS and database size at its end.

``sampler``: the same space, the same made-up curves told to an Optuna study directly, per
sampler; ms per ``ask`` + define-by-run, per window, on an in-memory and an SQLite storage.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from pathlib import Path

import optuna
import ray
import ray.cloudpickle

import synthetic_trial
from common import write_outputs

from prunetune.config import JobConfig
from prunetune.home import search_home
from prunetune.objectives import OBJECTIVES
from prunetune.results import load
from prunetune.samplers import SAMPLERS, make_sampler, register_sampler
from prunetune.search import run_search
from prunetune.spaces import load_search

ray.cloudpickle.register_pickle_by_value(synthetic_trial)  # Ray workers need not import bench/


class TimedSampler(optuna.samplers.BaseSampler):
    """Any sampler, with the wall and CPU seconds of its own work per trial number.

    CPU seconds (this thread's) are what other work on a shared machine cannot inflate.
    """

    def __init__(self, inner: optuna.samplers.BaseSampler) -> None:
        self.inner = inner
        self.seconds: dict[int, float] = {}
        self.cpu_seconds: dict[int, float] = {}
        self.started: dict[int, float] = {}  # trial number -> time.perf_counter() at its suggestion

    def _timed(self, number: int, call, *args):
        clock, cpu = time.perf_counter(), time.thread_time()
        try:
            return call(*args)
        finally:
            self.seconds[number] = self.seconds.get(number, 0.0) + time.perf_counter() - clock
            self.cpu_seconds[number] = self.cpu_seconds.get(number, 0.0) + time.thread_time() - cpu

    def infer_relative_search_space(self, study, trial):
        return self._timed(trial.number, self.inner.infer_relative_search_space, study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._timed(trial.number, self.inner.sample_relative, study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._timed(trial.number, self.inner.sample_independent, study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self.started[trial.number] = time.perf_counter()
        self.inner.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def timed(name: str) -> list[TimedSampler]:
    """In this process, sampler ``name`` becomes itself wrapped in ``TimedSampler``; the list gets each one built.

    The same name, not a new one: the job (with ``search.sampler``) is validated again in
    every trial's worker, whose registry knows only the product's names.
    """
    made: list[TimedSampler] = []
    product = SAMPLERS.get(name)

    def factory(seed: int, multi_objective: bool) -> TimedSampler:
        made.append(TimedSampler(product(seed, multi_objective)))
        return made[-1]

    SAMPLERS.remove(name)
    register_sampler(name)(factory)
    return made


class Watcher(threading.Thread):
    """Samples this process's RSS and a file's size once a second."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.samples, self.running = path, [], True

    @staticmethod
    def rss_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def run(self) -> None:
        while self.running:
            size = self.path.stat().st_size / 2**20 if self.path.exists() else 0.0
            self.samples.append((time.perf_counter(), self.rss_mb(), size, time.process_time()))
            time.sleep(1.0)


def _at(samples: list[tuple[float, ...]], moment: float) -> tuple[float, float, float]:
    """(RSS MB, database MB, driver CPU seconds) at the last sample before ``moment``."""
    before = [s for s in samples if s[0] <= moment] or samples[:1]
    return before[-1][1:] if before else (float("nan"),) * 3


def driver(args) -> None:
    name = f"scale-{args.sampler}-{args.trials}"
    made = timed(args.sampler)
    job, space = load_search(args.config, [f"storage.root={args.root}", f"search.num_samples={args.trials}",
                                           f"search.sampler={args.sampler}", *args.override])
    home = search_home(str(Path(args.root).resolve()), name)
    watcher = Watcher(home / "study.db")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    rss_before = Watcher.rss_mb()
    watcher.start()
    clock, cpu = time.perf_counter(), time.process_time()
    run_search(job, space, name=name, verbose=0, function=synthetic_trial.trial)
    wall, cpu = time.perf_counter() - clock, time.process_time() - cpu
    watcher.running = False
    rows = load(name, str(args.root))
    sampler = made[-1]
    per_trial = rows.groupby("trial").size()
    lines, windows = _driver_table(args, sampler, per_trial, watcher.samples)
    db = home / "study.db"
    store = sum(p.stat().st_size for p in home.glob("results*")) / 2**20
    experiment = sum(p.stat().st_size for p in (Path(args.root) / name).rglob("*") if p.is_file()) / 2**20
    rungs = rows.groupby("trial")["step"].max()
    data = {"name": name, "wall_seconds": wall, "trials": int(len(per_trial)), "results": int(len(rows)),
            "driver_seconds_per_result": wall / len(rows), "driver_cpu_seconds_per_result": cpu / len(rows),
            "mean_steps": float(per_trial.mean()),
            "trials_with_10_steps": int((rungs >= 10).sum()),
            "rss_mb_before": rss_before, "rss_mb_peak": max(s[1] for s in watcher.samples),
            "study_db_mb": db.stat().st_size / 2**20 if db.exists() else None, "results_store_mb": store,
            "ray_experiment_mb": experiment, "sampler_ms_median": 1000 * statistics.median(sampler.seconds.values()),
            "sampler_cpu_seconds": sum(sampler.cpu_seconds.values()), "driver_cpu_seconds": cpu,
            "windows": windows, "overrides": args.override}
    lines = [f"# Driver at scale, SIMULATED trials ({time.strftime('%Y-%m-%d')})", "",
             f"`python bench/driver_scale.py driver --trials {args.trials} --sampler {args.sampler} --window "
             f"{args.window}" + "".join(f" {o}" for o in args.override) + f"`; {platform.machine()}, "
             f"{os.cpu_count()} cores (shared). Trials: bench/synthetic_trial.py (a stand-in curve, not training).", "",
             f"{data['trials']} trials, {data['results']} results (mean {data['mean_steps']:.1f} steps; "
             f"{data['trials_with_10_steps']} trials reached step 10) in {wall:.0f} s: "
             f"**{data['driver_seconds_per_result'] * 1000:.0f} ms of driver wall time per result** "
             f"({data['driver_cpu_seconds_per_result'] * 1000:.0f} ms of the driver process's CPU, of which the "
             f"sampler's own work {1000 * data['sampler_cpu_seconds'] / len(rows):.0f} ms). "
             f"Driver RSS {rss_before:.0f} MB before the search, peak {data['rss_mb_peak']:.0f} MB; study database "
             f"{data['study_db_mb']:.1f} MB, results store {store:.1f} MB, Ray experiment folder {experiment:.1f} MB.",
             "", *lines]
    write_outputs(args.out, lines, data)


def _driver_table(args, sampler: TimedSampler, per_trial, samples) -> tuple[list[str], list[dict]]:
    lines = ["| trials | driver wall ms per result | driver CPU ms per result | trials per s | sampler ms per "
             "suggestion, wall median / p90 | sampler CPU ms, median | driver RSS MB | study DB MB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    numbers = sorted(sampler.started)
    windows = []
    for start in range(0, len(numbers), args.window):
        window = numbers[start:start + args.window]
        if len(window) < 2:
            continue
        seconds = sampler.started[window[-1]] - sampler.started[window[0]]
        results = int(sum(per_trial.get(n, 0) for n in window[:-1]))
        sampled = sorted(sampler.seconds.get(n, 0.0) for n in window)
        rss, db, cpu_end = _at(samples, sampler.started[window[-1]])
        cpu_start = _at(samples, sampler.started[window[0]])[2]
        cpu_sampled = statistics.median(sampler.cpu_seconds.get(n, 0.0) for n in window)
        record = {"first": window[0], "last": window[-1], "ms_per_result": 1000 * seconds / max(results, 1),
                  "cpu_ms_per_result": 1000 * (cpu_end - cpu_start) / max(results, 1),
                  "sampler_cpu_ms_median": 1000 * cpu_sampled,
                  "trials_per_s": (len(window) - 1) / seconds, "sampler_ms_median": 1000 * statistics.median(sampled),
                  "sampler_ms_p90": 1000 * sampled[int(0.9 * (len(sampled) - 1))], "rss_mb": rss, "db_mb": db}
        windows.append(record)
        lines.append(f"| {window[0]}-{window[-1]} | {record['ms_per_result']:.0f} | {record['cpu_ms_per_result']:.0f} | "
                     f"{record['trials_per_s']:.2f} | {record['sampler_ms_median']:.0f} / {record['sampler_ms_p90']:.0f} | "
                     f"{1000 * cpu_sampled:.0f} | {rss:.0f} | {db:.1f} |")
    return lines, windows


class RecentHistory(optuna.samplers.BaseSampler):
    """A sampler that sees only the last ``keep`` finished trials (a cap on history; bench-only, to measure it).

    The study it is handed is wrapped so that ``_get_trials`` (what TPE and its search-space
    decomposition read) returns the most recent ``keep`` finished trials and every running one.
    """

    def __init__(self, inner: optuna.samplers.BaseSampler, keep: int) -> None:
        self.inner, self.keep = inner, keep

    def _view(self, study):
        return _RecentStudy(study, self.keep)

    def infer_relative_search_space(self, study, trial):
        return self.inner.infer_relative_search_space(self._view(study), trial)

    def sample_relative(self, study, trial, search_space):
        return self.inner.sample_relative(self._view(study), trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.inner.sample_independent(self._view(study), trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self.inner.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self.inner.after_trial(study, trial, state, values)


class _RecentStudy:
    def __init__(self, study, keep: int) -> None:
        self._study, self._keep = study, keep

    def __getattr__(self, name: str):
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True, states=None, use_cache: bool = False):
        trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        finished = [t for t in trials if t.state.is_finished()]
        if len(finished) <= self._keep:
            return trials
        kept = {t.number for t in finished[-self._keep:]}
        return [t for t in trials if not t.state.is_finished() or t.number in kept]


def _candidate(name: str, objective) -> optuna.samplers.BaseSampler:
    """A product sampler by name, or a bench variant of TPE: ``tpe_ei8`` (n_ei_candidates 8), ``tpe_last500``."""
    if name == "tpe_ei8":
        return optuna.samplers.TPESampler(seed=0, multivariate=True, group=True, n_startup_trials=4, n_ei_candidates=8)
    if name.startswith("tpe_last"):
        return RecentHistory(make_sampler("tpe", 0, objective.multi), int(name.removeprefix("tpe_last")))
    return make_sampler(name, 0, objective.multi)


def sampler_only(args) -> None:
    """CPU ms per suggestion at growing study sizes: the study is filled with random trials, then each sampler asks."""
    job, space = load_search(args.config, [f"storage.root={args.root}", *args.override])
    objective = OBJECTIVES.get(job.search.objectives)
    sizes = [int(size) for size in args.sizes.split(",")]
    results: dict[str, dict[int, float]] = {}
    for storage_kind in args.storages.split(","):
        study, count = _empty_study(storage_kind, objective), 0
        for size in sizes:
            study.sampler = optuna.samplers.RandomSampler(seed=size)
            for _ in range(count, size):
                _tell_synthetic(study, job, space, study.ask(), objective)
            count = size
            for name in args.samplers.split(","):
                study.sampler = _candidate(name, objective)
                times = []
                for _ in range(args.asks):
                    clock = time.thread_time()  # CPU, not wall: other work on the machine does not inflate it
                    trial = study.ask()
                    space.define_by_run(trial)
                    times.append(time.thread_time() - clock)
                    _tell_synthetic(study, job, space, trial, objective)
                    count += 1
                results.setdefault(f"{name} / {storage_kind}", {})[size] = 1000 * statistics.median(times)
                print(name, storage_kind, size, f"{results[f'{name} / {storage_kind}'][size]:.0f} ms", flush=True)
    lines = [f"# Sampler cost per suggestion as the study grows, SIMULATED trials ({time.strftime('%Y-%m-%d')})", "",
             f"`python bench/driver_scale.py sampler --sizes {args.sizes} --samplers {args.samplers} --storages "
             f"{args.storages} --asks {args.asks}`; {platform.machine()}, {os.cpu_count()} cores (shared). "
             "CPU ms (this thread's, so other work on the machine does not inflate it) per ask + define-by-run "
             "(storage reads included), median of the asks at each size. The study holds that many finished "
             "trials (random settings; each told its made-up curve's best feasible step, PRUNED without one, as "
             "the driver tells them).", "",
             "| sampler / storage | " + " | ".join(f"{size} trials" for size in sizes) + " |",
             "|" + " --- |" * (len(sizes) + 1)]
    for key, by_size in results.items():
        lines.append(f"| {key} | " + " | ".join(f"{by_size[size]:.0f}" for size in sizes) + " |")
    write_outputs(args.out, lines, results)


def _empty_study(storage_kind: str, objective) -> optuna.Study:
    import tempfile

    folder = tempfile.mkdtemp(prefix="driver-scale-")
    storage = None if storage_kind == "memory" else f"sqlite:///{folder}/study.db"
    return optuna.create_study(storage=storage, directions=["maximize" if m == "max" else "minimize"
                                                            for m in objective.modes])


def _tell_synthetic(study: optuna.Study, job: JobConfig, space, trial, objective) -> None:
    if not trial.params:
        space.define_by_run(trial)
    config = space.apply(job, trial.params)
    threshold = synthetic_trial.BASELINE_ACCURACY - job.stop.max_accuracy_drop
    feasible = [(mac, acc) for _, mac, acc in synthetic_trial.curve(config, trial.params) if acc >= threshold]
    if feasible:
        mac, accuracy = min(feasible)
        study.tell(trial, [accuracy, mac * synthetic_trial.BASELINE_MACS])
    else:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["driver", "sampler"])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--window", type=int, default=250, help="driver: trials per row of the table")
    parser.add_argument("--sampler", default="tpe", help="driver: the sampler")
    parser.add_argument("--samplers", default="tpe,tpe_ei8,tpe_last500,nsga2,random",
                        help="sampler: the samplers compared (tpe_ei8, tpe_lastN: bench variants of tpe)")
    parser.add_argument("--sizes", default="250,500,1000,2000", help="sampler: study sizes")
    parser.add_argument("--asks", type=int, default=5, help="sampler: suggestions timed per size and sampler")
    parser.add_argument("--storages", default="memory,sqlite", help="sampler: memory and/or sqlite")
    parser.add_argument("--config", type=Path, default=Path("bench/configs/driver_scale.yaml"))
    parser.add_argument("--root", type=Path, default=Path(f"runs/bench/driver-scale-{time.strftime('%Y%m%d-%H%M%S')}"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("override", nargs="*", help="dotted config overrides, e.g. search.scheduler=fifo")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args.out = args.out or Path(f"bench/results/driver_scale_{args.mode}.md")
    driver(args) if args.mode == "driver" else sampler_only(args)


if __name__ == "__main__":
    main()
