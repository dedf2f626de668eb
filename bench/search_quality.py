"""Search quality: hypervolume of the step front per trial budget, TPE / NSGA-II / random, vs seed 001.

    .venv/bin/python bench/search_quality.py [--trials 16] [--seeds 0,1,2] [--config bench/configs/search_quality.yaml]
        [--out bench/results/search_quality.md]

For each sampler seed, on one shared baseline (the config's; only ``search.sampler_seed``
changes): multi-objective TPE and NSGA-II with N trials, random search with 2N (its first N
trials are a random search of N). Each search's front is over every feasible (trial, step)
row; its hypervolume in (accuracy, MAC ratio) is taken after the first N/4, N/2, N (and 2N)
finished trials, against one reference point: accuracy = the feasibility threshold,
MAC ratio = 1. The hand-tuned seed-001 schedule (l1; targets 0.10..0.80 by 0.05; KD alpha
0.5, T 4; lr 1e-4, 3e-5 from 0.21; BN recalibration) runs once on the same baseline with
the same recovery epochs per step; its feasible steps are a fixed front of their own.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import ray
import torch

from common import write_outputs

from prunetune.baseline import prepare_baseline
from prunetune.config import load_config
from prunetune.pipeline import run
from prunetune.pipeline.run import accuracy_threshold
from prunetune.results import hypervolume, load, pareto_front
from prunetune.results.front import dominated_by
from prunetune.search import run_search
from prunetune.spaces import load_search

SEED001 = ["pruning.criterion=l1", "pruning.schedule.kind=targets",
           "pruning.schedule.targets=[" + ",".join(f"{0.10 + 0.05 * i:.2f}" for i in range(15)) + "]",
           "pruning.repair=bn", "recovery.kd_alpha=0.5", "recovery.kd_temperature=4.0", "recovery.lr=1e-4",
           "recovery.lr_high=3e-5", "recovery.lr_high_threshold=0.21"]
OBJECTIVES = {"accuracy": "max", "mac_ratio": "min"}


def first_trials(rows: pd.DataFrame, count: int) -> pd.DataFrame:
    """Rows of the first ``count`` trials by Optuna number (the order the sampler proposed them)."""
    numbers = sorted(rows["trial"].dropna().unique())[:count]
    return rows[rows["trial"].isin(numbers)]


def hand_tuned(config_path: Path, root: Path) -> pd.DataFrame:
    config = load_config(config_path, [f"storage.root={root}", *SEED001])
    result = run(config, directory=root / "seed001")
    rows = pd.DataFrame([row.to_dict() for row in result.rows])
    return rows



def shared_baseline(config: Path, root: Path):
    """Ray for the searches (2 CPUs), the job under ``root``, its baseline (trained once), the
    threshold and the hypervolume reference point every search of the benchmark is scored against."""
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    base = load_config(config, [f"storage.root={root}"])
    baseline = prepare_baseline(base)
    threshold = accuracy_threshold(base, baseline.record.accuracy)
    return base, baseline, threshold, {"accuracy": threshold, "mac_ratio": 1.0}

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--samplers", default="tpe,nsga2,random")
    parser.add_argument("--config", type=Path, default=Path("bench/configs/search_quality.yaml"))
    parser.add_argument("--root", type=Path, default=Path(f"runs/bench/search-quality-{time.strftime('%Y%m%d-%H%M%S')}"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/search_quality.md"))
    args = parser.parse_args()
    started = time.perf_counter()
    base, baseline, threshold, reference = shared_baseline(args.config, args.root)
    n = args.trials
    budgets = [max(1, n // 4), max(1, n // 2), n]

    records, fronts = [], {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for sampler in args.samplers.split(","):
            trials = 2 * n if sampler == "random" else n
            name = f"{sampler}-s{seed}"
            job, space = load_search(args.config, [f"storage.root={args.root}", f"search.sampler={sampler}",
                                                   f"search.sampler_seed={seed}", f"search.num_samples={trials}"])
            clock = time.perf_counter()
            run_search(job, space, name=name, verbose=0)
            rows = load(name, str(args.root))
            record = {"sampler": sampler, "seed": seed, "seconds": time.perf_counter() - clock,
                      "trials": int(rows["trial"].nunique()), "rows": len(rows)}
            for budget in budgets + ([2 * n] if sampler == "random" else []):
                record[f"hv@{budget}"] = hypervolume(first_trials(rows, budget), reference, OBJECTIVES)
            records.append(record)
            fronts[name] = pareto_front(rows, OBJECTIVES)
            print(json.dumps(record), flush=True)

    seed001 = hand_tuned(args.config, args.root)
    seed001_front = pareto_front(seed001, OBJECTIVES)
    seed001_hv = hypervolume(seed001, reference, OBJECTIVES)
    write(args, records, fronts, seed001, seed001_front, seed001_hv, budgets, baseline.record.accuracy, threshold,
          time.perf_counter() - started)


def _signed(front: pd.DataFrame):
    return front[list(OBJECTIVES)].to_numpy(dtype=float) * [-1.0, 1.0]


def write(args, records, fronts, seed001, seed001_front, seed001_hv, budgets, baseline_accuracy, threshold,
          seconds) -> None:
    n = args.trials
    frame = pd.DataFrame(records)
    columns = [f"hv@{b}" for b in budgets] + [f"hv@{2 * n}"]
    lines = [f"# Search quality ({time.strftime('%Y-%m-%d')})", "",
             f"`python bench/search_quality.py --trials {n} --seeds {args.seeds} --samplers {args.samplers} "
             f"--config {args.config}`; {platform.machine()} CPU, {torch.get_num_threads()} threads, "
             f"2 concurrent trials, {seconds / 60:.1f} min in all.", "",
             f"Baseline accuracy {baseline_accuracy:.4f}, feasibility threshold {threshold:.4f}; hypervolume in "
             f"(accuracy, MAC ratio) over every feasible step, reference ({threshold:.4f}, 1.0). "
             f"Median over seeds [min, max].", "",
             "| sampler | " + " | ".join(f"HV after {c.removeprefix('hv@')} trials" for c in columns)
             + " | minutes per search |", "|" + " --- |" * (len(columns) + 2)]
    for sampler, group in frame.groupby("sampler", sort=False):
        cells = []
        for column in columns:
            values = group[column].dropna().tolist() if column in group else []
            cells.append(f"{statistics.median(values):.4f} [{min(values):.4f}, {max(values):.4f}]" if values else "-")
        lines.append(f"| {sampler} | " + " | ".join(cells) + f" | {group['seconds'].median() / 60:.1f} |")
    lines.append(f"| seed-001 schedule (one run, {len(seed001)} steps) | " + " | ".join(
        ["-"] * (len(columns) - 1)) + f" | {seed001_hv:.4f} | - |")
    lines += ["", "Per seed:", "", "| sampler | seed | " + " | ".join(columns) + " | trials | rows |",
              "|" + " --- |" * (len(columns) + 4)]
    for record in records:
        lines.append(f"| {record['sampler']} | {record['seed']} | "
                     + " | ".join(f"{record[c]:.4f}" if c in record else "-" for c in columns)
                     + f" | {record['trials']} | {record['rows']} |")
    hand = _signed(seed001_front)
    lines += ["", "Does a searched front dominate the hand-tuned schedule's front points?", "",
              "| search | seed-001 front points dominated |", "| --- | --- |"]
    for name, front in fronts.items():
        share = dominated_by(hand, _signed(front)).mean() if len(hand) else float("nan")
        lines.append(f"| {name} | {share:.0%} of {len(hand)} |")
    lines += ["", "Seed-001 schedule steps (accuracy, MAC ratio, feasible): "
              + ", ".join(f"({r.accuracy:.4f}, {r.mac_ratio:.3f}, {'y' if r.feasible else 'n'})"
                          for r in seed001.itertuples())]
    write_outputs(args.out, lines, {"records": records, "seed001_hv": seed001_hv})


if __name__ == "__main__":
    main()
