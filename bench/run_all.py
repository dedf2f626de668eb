"""Run the benchmarks: a quick CPU set (a few minutes), or the full set (default when CUDA is present).

    .venv/bin/python bench/run_all.py            # quick on CPU, full with a GPU
    .venv/bin/python bench/run_all.py --full     # full even on CPU (about an hour on 2 cores)
    make bench                                   # the same as the first line

Each benchmark runs in its own process (each starts its own Ray) and writes a Markdown
table plus JSON under bench/results/ (the quick set under bench/results/quick/, so it
never overwrites the full tables that bench/README.md quotes).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

QUICK = {
    "pipeline_phases": [],
    "latency": ["--models", "resnet18,mobilenet_v3_small", "--targets", "0.5", "--scopes", "all", "--size", "160",
                "--repeats", "10"],
    "trial_overhead": ["--trials", "4"],
    "search_quality": ["--trials", "4", "--seeds", "0", "--samplers", "tpe,random"],
    "store_writes": ["--sizes", "300,1000"],
}
FULL = {
    "pipeline_phases": [],
    "latency": [],
    "trial_overhead": [],
    "search_quality": [],
    "store_writes": [],
    "gpu_packing": [],
    "tkp": [],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full set even without CUDA")
    parser.add_argument("--only", help="comma-separated benchmark names")
    args = parser.parse_args()
    full = args.full or torch.cuda.is_available()
    plan = FULL if full else QUICK
    folder = Path("bench/results") if full else Path("bench/results/quick")
    names = args.only.split(",") if args.only else list(plan)
    unknown = sorted(set(names) - set(plan))
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(plan)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        out = folder / (f"{name}.md" if name != "gpu_packing" else
                        f"gpu_packing_{'cuda' if torch.cuda.is_available() else 'cpu'}.md")
        command = [sys.executable, f"bench/{name}.py", *plan[name], "--out", str(out)]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        if subprocess.run(command).returncode != 0:
            failed.append(name)
        print(f"== {name}: {time.perf_counter() - started:.0f} s -> {out}", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
