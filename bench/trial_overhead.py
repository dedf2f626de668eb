"""A trial's fixed cost in Ray against its training, with and without actor reuse; phase fractions.

    .venv/bin/python bench/trial_overhead.py [--trials 8] [--config bench/configs/search_quality.yaml]
        [--out bench/results/trial_overhead.md]

1. Cold start, in a fresh process (what a new Ray worker pays before its first step):
   ``import torch``, importing the pipeline (torch-pruning, torchvision...), building the
   model, loading the baseline and data, building the dependency graph.
2. The same random search (the config's default space, N trials, 2 at a time) twice, with
   ``search.reuse_actors`` false and true: search wall time; per trial, Ray's wall time
   against the sum of its steps' phase seconds (the rest is in-trial overhead: baseline
   files, graph, saving models, reporting); and the driver's share (scheduling, worker
   start): wall x concurrency - the trials' own time, per trial.
3. The pipeline's phase fractions over every step of both searches (the default space).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import ray
import torch

from common import write_outputs

from prunetune.pipeline import PHASES
from prunetune.results import load
from prunetune.search import run_search
from prunetune.spaces import load_search

COLD = textwrap.dedent("""
    import json, sys, time
    marks = {}
    t = time.perf_counter()
    import torch
    marks["import torch"] = time.perf_counter() - t; t = time.perf_counter()
    from prunetune.baseline import prepare_baseline
    from prunetune.config import load_config
    from prunetune.pipeline import run
    from prunetune.pruning import Pruner
    marks["import prunetune pipeline"] = time.perf_counter() - t; t = time.perf_counter()
    config = load_config(sys.argv[1], sys.argv[2:])
    baseline = prepare_baseline(config)
    marks["baseline + data (reused files)"] = time.perf_counter() - t; t = time.perf_counter()
    example = next(iter(baseline.loaders.calibration))[0][:1]
    Pruner(baseline.model, example, config.pruning, seed=0)
    marks["dependency graph + scope"] = time.perf_counter() - t
    print(json.dumps(marks))
""")


def cold_start(config: Path, overrides: list[str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", COLD, str(config), *overrides], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def search(config: Path, root: Path, name: str, trials: int, reuse: bool) -> dict:
    job, space = load_search(config, [f"storage.root={root}", "search.sampler=random", f"search.num_samples={trials}",
                                      f"search.reuse_actors={str(reuse).lower()}"])
    started = time.perf_counter()
    run_search(job, space, name=name, verbose=0)
    wall = time.perf_counter() - started
    rows = load(name, str(root))
    last = rows.sort_values("step").groupby("trial").tail(1)
    trial_seconds = last["trial_seconds"].sum()
    steps_seconds = rows["seconds_total"].sum()
    concurrency = job.search.max_concurrent_trials
    return {"reuse_actors": reuse, "wall": wall, "trials": len(last), "steps": len(rows),
            "trial_seconds": trial_seconds, "steps_seconds": steps_seconds,
            "in_trial_overhead": (trial_seconds - steps_seconds) / len(last),
            "driver_overhead": (wall * concurrency - trial_seconds) / len(last),
            "phases": {phase: rows[f"seconds_{phase}"].sum() for phase in PHASES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--config", type=Path, default=Path("bench/configs/search_quality.yaml"))
    parser.add_argument("--root", type=Path, default=Path(f"runs/bench/overhead-{time.strftime('%Y%m%d-%H%M%S')}"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/trial_overhead.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    runs = [search(args.config, args.root, f"reuse-{reuse}", args.trials, reuse) for reuse in (False, True)]
    cold = cold_start(args.config, [f"storage.root={args.root}"])  # after the searches: baseline files exist
    lines = [f"# Trial overhead ({time.strftime('%Y-%m-%d')})", "",
             f"`python bench/trial_overhead.py --trials {args.trials} --config {args.config}`; {platform.machine()} "
             f"CPU, torch {torch.__version__}, Ray {ray.__version__}, {(time.perf_counter() - started) / 60:.1f} min.",
             "", "Cold start of a fresh process:", "", "| stage | seconds |", "| --- | --- |",
             *(f"| {stage} | {seconds:.2f} |" for stage, seconds in cold.items()),
             f"| total | {sum(cold.values()):.2f} |", "",
             "Random search, default space, 2 concurrent trials:", "",
             "| reuse_actors | wall s | trials | steps | mean trial s | in-trial overhead s / trial "
             "| driver + worker start s / trial | overhead share |", "|" + " --- |" * 8]
    for r in runs:
        mean = r["trial_seconds"] / r["trials"]
        overhead = r["in_trial_overhead"] + r["driver_overhead"]
        lines.append(f"| {r['reuse_actors']} | {r['wall']:.1f} | {r['trials']} | {r['steps']} | {mean:.1f} | "
                     f"{r['in_trial_overhead']:.2f} | {r['driver_overhead']:.2f} | {overhead / (mean + r['driver_overhead']):.0%} |")
    total = sum(sum(r["phases"].values()) for r in runs)
    trial_total = sum(r["trial_seconds"] for r in runs)
    lines += ["", "Phase fractions of the trials' wall time (both searches):", "", "| phase | seconds | fraction |",
              "| --- | --- | --- |"]
    for phase in PHASES:
        seconds = sum(r["phases"][phase] for r in runs)
        lines.append(f"| {phase} | {seconds:.1f} | {seconds / trial_total:.1%} |")
    lines.append(f"| other (in-trial overhead) | {trial_total - total:.1f} | {(trial_total - total) / trial_total:.1%} |")
    write_outputs(args.out, lines, {"cold": cold, "runs": runs})


if __name__ == "__main__":
    main()
