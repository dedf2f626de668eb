"""Packing trials on one device: aggregate trial-steps per hour and images/s at 1, 2, 4, 8 concurrent trials.

    .venv/bin/python bench/gpu_packing.py [--concurrency 1,2,4,8] [--workloads mbv3-96,resnet18-32]
        [--steps 3] [--out bench/results/gpu_packing.md]

Every trial runs the same fixed pipeline (l1, a linear schedule of ``--steps`` steps, one
recovery epoch each) so only the packing changes. With CUDA, k concurrent trials get
``gpus_per_trial = 1/k`` of the one GPU (and the CPUs split evenly); without CUDA the CPUs
are split instead (``cpus_per_trial = cores/k``), which is the CPU table. Each setting runs
2k trials (two waves) so the figure includes trial turnover. Reported: aggregate pruning
steps per hour, recovery images/s (train images x epochs run / wall), and the largest peak
GPU memory of any step (``peak_memory_mb`` in the results rows).

Workloads: ``mbv3-96`` = mobilenet_v3_small on digits upscaled to 96px, ``resnet18-32`` =
torchvision resnet18 on digits at 32px (``--train-size`` images each).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import ray
import torch

from common import write_outputs

from prunetune.baseline import prepare_baseline
from prunetune.results import load
from prunetune.search import run_search
from prunetune.spaces import load_search

WORKLOADS = {"mbv3-96": ("mobilenet_v3_small", 96), "resnet18-32": ("resnet18", 32),
             "mbv3-32": ("mobilenet_v3_small", 32)}


def overrides(workload: str, args, root: Path) -> list[str]:
    model, size = WORKLOADS[workload]
    return [f"storage.root={root}", f"model.name={model}", f"data.image_size={size}", "data.name=digits",
            f"data.train_size={args.train_size}", "data.hflip=false", "baseline.epochs=2", "pruning.scope=all",
            "pruning.schedule.kind=linear", f"pruning.schedule.steps={args.steps}",
            "pruning.schedule.final_sparsity=0.5", "recovery.epochs=1", "recovery.patience=null",
            "stop.max_accuracy_drop=1.0", "search.space={pruning.criterion: {choice: [l1]}}", "search.sampler=random"]


def measure(workload: str, k: int, args, root: Path, cuda: bool) -> dict:
    cores = os.cpu_count() or 1
    shares = [f"search.max_concurrent_trials={k}", f"search.num_samples={2 * k}",
              f"search.cpus_per_trial={max(cores / k, 0.01) if not cuda else max(cores // k, 1)}",
              f"search.gpus_per_trial={1 / k if cuda else 0}", f"runtime.threads={max(cores // k, 1)}"]
    job, space = load_search(None, overrides(workload, args, root) + shares)
    images = sum(len(y) for _, y in prepare_baseline(job).loaders.train)
    name = f"{workload}-k{k}"
    started = time.perf_counter()
    run_search(job, space, name=name, verbose=0)
    wall = time.perf_counter() - started
    rows = load(name, str(root))
    return {"workload": workload, "concurrency": k, "wall": wall, "steps": len(rows),
            "steps_per_hour": len(rows) / wall * 3600, "images_per_s": images * rows["epochs_run"].sum() / wall,
            "peak_memory_mb": float(rows["peak_memory_mb"].max()) if cuda else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", default=None, help="default 1,2,4,8 with CUDA, 1,2 without")
    parser.add_argument("--workloads", default=None, help="default mbv3-96,resnet18-32 with CUDA, mbv3-32,resnet18-32 without")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=1024)
    parser.add_argument("--root", type=Path, default=Path(f"runs/bench/packing-{time.strftime('%Y%m%d-%H%M%S')}"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    levels = [int(k) for k in (args.concurrency or ("1,2,4,8" if cuda else "1,2")).split(",")]
    workloads = (args.workloads or ("mbv3-96,resnet18-32" if cuda else "mbv3-32,resnet18-32")).split(",")
    out = args.out or Path(f"bench/results/gpu_packing_{'cuda' if cuda else 'cpu'}.md")
    ray.init(num_cpus=os.cpu_count(), num_gpus=1 if cuda else 0, include_dashboard=False, configure_logging=False,
             log_to_driver=False)
    started = time.perf_counter()
    rows = []
    for workload in workloads:
        for k in levels:
            rows.append(measure(workload, k, args, args.root, cuda))
            print(json.dumps(rows[-1]), flush=True)
    device = torch.cuda.get_device_name() if cuda else f"{platform.machine()} CPU, {os.cpu_count()} cores"
    lines = [f"# Packing trials on one {'GPU' if cuda else 'CPU'} ({time.strftime('%Y-%m-%d')})", "",
             f"`python bench/gpu_packing.py --concurrency {','.join(map(str, levels))} --workloads "
             f"{','.join(workloads)} --steps {args.steps} --train-size {args.train_size}`; {device}, "
             f"{(time.perf_counter() - started) / 60:.1f} min.", "",
             "| workload | concurrent trials | wall s | steps/hour | vs 1 trial | images/s | peak memory MiB (max step) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        single = next(r for r in rows if r["workload"] == row["workload"] and r["concurrency"] == levels[0])
        memory = f"{row['peak_memory_mb']:.0f}" if row["peak_memory_mb"] is not None else "- (CPU)"
        lines.append(f"| {row['workload']} | {row['concurrency']} | {row['wall']:.0f} | {row['steps_per_hour']:.0f} | "
                     f"{row['steps_per_hour'] / single['steps_per_hour']:.2f}x | {row['images_per_s']:.0f} | {memory} |")
    write_outputs(out, lines, rows)


if __name__ == "__main__":
    main()
