"""Search at equal compute: hypervolume of the step front against trial seconds, seven variants vs seed 001.

    .venv/bin/python bench/search_compute.py [--trials 16] [--seeds 0,1,2] [--variants all]
        [--config bench/configs/search_compute.yaml] [--out bench/results/search_compute.md]

Rungs save compute, so variants are compared at equal *compute*, not equal trial counts:
a search's compute after its first k trials (Optuna numbers, the order the sampler proposed
them) is the sum of those trials' seconds (Ray's ``time_total_s`` at each trial's last
report: wall seconds of a 1-thread worker, from the trial's start to its last step; a
stopped trial costs what it ran). One *trial-equivalent* (TE) is the mean seconds of a
random-search trial (fifo) of the same run. Every variant gets the same budget,
``--trials`` TE: searches without rungs run ``--trials`` trials plus a margin (a sampler
that prefers short schedules needs more of them), searches with rungs more trials, since
stopped ones are cheap; the curves are cut at the budget.

Each search's front is over every feasible (trial, step) row; its hypervolume in
(accuracy, MAC ratio) against (threshold, 1.0), as bench/search_quality.py. The hand-tuned
seed-001 schedule runs once on the same baseline (its hypervolume is a fixed point).
Steps (pipeline steps run: one recovery epoch each) are reported beside the seconds as a
compute measure the other work on a shared machine cannot inflate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import pandas as pd

from search_compute_report import report
from search_quality import OBJECTIVES, hand_tuned, shared_baseline

from prunetune.results import hypervolume, load
from prunetune.home import search_home
from prunetune.search import resume_search, run_search, search_status
from prunetune.spaces import load_search

# name -> (overrides, trials per TE of budget)
VARIANTS = {
    "random": (["search.sampler=random"], 1.15),
    "tpe": (["search.sampler=tpe"], 1.15),
    "tpe-front_area": (["search.sampler=tpe", "search.objectives=front_area"], 1.15),
    "random+rungs": (["search.sampler=random", "search.scheduler=rungs"], 1.6),
    "tpe+rungs": (["search.sampler=tpe", "search.scheduler=rungs"], 1.6),
    "tpe-front_area+rungs": (["search.sampler=tpe", "search.objectives=front_area", "search.scheduler=rungs"], 1.6),
    "nsga2": (["search.sampler=nsga2"], 1.15),
}


def compute_curve(rows: pd.DataFrame, reference: dict) -> pd.DataFrame:
    """Per trial in proposal order: cumulative trial seconds, steps, and the hypervolume of the front so far."""
    per_trial = rows.groupby("trial").agg(seconds=("trial_seconds", "max"), steps=("step", "count")).sort_index()
    points = []
    for count, number in enumerate(per_trial.index, start=1):
        upto = rows[rows["trial"] <= number]
        points.append({"trials": count, "seconds": float(per_trial["seconds"].iloc[:count].sum()),
                       "steps": int(per_trial["steps"].iloc[:count].sum()),
                       "hv": hypervolume(upto, reference, OBJECTIVES)})
    return pd.DataFrame(points)


def run_or_reuse(job, space, name: str, root: Path) -> float | None:
    """Run the search ``name``; one already under ``root`` is kept (finished) or resumed. Wall seconds, None if kept."""
    outcome = search_status(name, str(root)) if (search_home(str(root.resolve()), name) / "search.json").exists() else None
    if outcome is not None and not outcome.interrupted:
        return None
    clock = time.perf_counter()
    if outcome is None:
        run_search(job, space, name=name, verbose=0)
    else:
        resume_search(name, str(root), verbose=0)
    return time.perf_counter() - clock


def seed001_record(config: Path, root: Path, reference: dict) -> dict:
    """The hand-tuned schedule's hypervolume (run once per root, then read back)."""
    saved = root / "seed001.json"
    if saved.exists():
        return json.loads(saved.read_text())
    clock = time.perf_counter()
    rows = hand_tuned(config, root)
    record = {"seed001_hv": hypervolume(rows, reference, OBJECTIVES), "seed001_seconds": time.perf_counter() - clock,
              "seed001_steps": len(rows)}
    saved.write_text(json.dumps(record))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="compute budget in trial-equivalents")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--compute", choices=["steps", "seconds"], default="steps",
                        help="what compute is counted in: pipeline steps run, or trial seconds")
    parser.add_argument("--config", type=Path, default=Path("bench/configs/search_compute.yaml"))
    parser.add_argument("--root", type=Path, default=Path(f"runs/bench/search-compute-{time.strftime('%Y%m%d-%H%M%S')}"),
                        help="a root that has some of the searches already keeps (or resumes) them")
    parser.add_argument("--out", type=Path, default=Path("bench/results/search_compute.md"))
    parser.add_argument("--no-seed001", action="store_true", help="skip the hand-tuned schedule")
    args = parser.parse_args()
    started = time.perf_counter()
    base, baseline, threshold, reference = shared_baseline(args.config, args.root)
    summary = {"budget_te": args.trials, "threshold": threshold, "baseline_accuracy": baseline.record.accuracy,
               "seed001_hv": None, "seed001_seconds": None, "config": str(args.config), "seeds": args.seeds,
               "compute": args.compute,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the start)"}
    if not args.no_seed001:
        summary.update(seed001_record(args.config, args.root, reference))
    variants = args.variants.split(",")
    # random first: its trials define the trial-equivalent every budget is counted in
    variants.sort(key=lambda name: name != "random")

    records = []
    for seed in [int(s) for s in args.seeds.split(",")]:  # seed by seed: a cut-short run has whole seeds
        for variant in variants:
            overrides, per_te = VARIANTS[variant]
            name = f"{variant}-s{seed}".replace("+", "_")
            job, space = load_search(args.config, [f"storage.root={args.root}", f"search.sampler_seed={seed}",
                                                   f"search.num_samples={math.ceil(args.trials * per_te)}",
                                                   *overrides])
            wall = run_or_reuse(job, space, name, args.root)
            rows = load(name, str(args.root))
            curve = compute_curve(rows, reference)
            records.append({"variant": variant, "seed": seed, "wall_seconds": wall,
                            "trials": int(rows["trial"].nunique()), "rows": len(rows),
                            "trial_seconds": float(curve["seconds"].iloc[-1]), "steps": int(curve["steps"].iloc[-1]),
                            "final_hv": float(curve["hv"].iloc[-1]), "curve": curve.to_dict("list")})
            print(json.dumps({k: v for k, v in records[-1].items() if k != "curve"}), flush=True)
            report(args.out, records, {**summary, "minutes": (time.perf_counter() - started) / 60})


if __name__ == "__main__":
    main()
