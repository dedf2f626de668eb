"""Top-K kernel pruning against channel pruning at about equal effective MACs, after equal training.

    .venv/bin/python bench/tkp.py [CONFIG] [--topk 1,2,4] [--variants exponential,l2,none,at once] [--epochs 8]
                                  [--stage1 4] [--alpha A] [--out bench/results/tkp.md]

CONFIG (default examples/digits_tkp.yaml: tiny_resnet on digits at 16 px) gives the baseline
(trained first when runs/ does not hold it), the data, the recovery settings and the TKP
settings; its own channel step and TKP choice are replaced here. Every cell starts from that
trained baseline and trains EPOCHS epochs in all, distilling from it, then keeps its best
validation epoch (as the pipeline does for every row); no patience, every epoch runs:

- ``exponential`` / ``l2``: stage 1, STAGE1 epochs with that penalty at tkp.stage1_lr; stage 2,
  EPOCHS - STAGE1 epochs under the hard masks at recovery.lr.
- ``none``: the same two stages, stage 1 without a penalty: what the regulariser is measured against.
- ``at once``: the masks at once, EPOCHS epochs of stage 2.
- ``channel``: one channel cut (the config's scope and criterion, BN repair) to the MAC ratio
  the TKP rows of that K reach in effective MACs, then EPOCHS recovery epochs at recovery.lr.

A cell shows the accuracy the stage or cut started from (after the hard mask or cut, BN
recalibrated: for the two-stage variants, what stage 1 left) and the final accuracy.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
from common import write_outputs

from prunetune.config import read_yaml, validate_config
from prunetune.config.job import apply_overrides
from prunetune.pipeline import run

VARIANTS = ("exponential", "l2", "none", "at once")


def job(base: dict, overrides: list[str]):
    # One thread: the table is taken on a shared 2-core machine (bench/README.md).
    return validate_config(apply_overrides(base, ["recovery.patience=null", "stop.max_accuracy_drop=1.0",
                                                  "runtime.threads=1", *overrides]))


def tkp_cell(base: dict, topk: int, variant: str, epochs: int, stage1: int, tkp: dict, lr: float) -> dict:
    two_stage = variant != "at once"
    settings = {"topk": topk, "stage2_epochs": epochs - stage1 if two_stage else epochs, "stage2_lr": lr,
                "reg_type": "none" if variant in ("none", "at once") else variant,
                "stage1_epochs": stage1 if two_stage else 0}
    if two_stage:
        settings["stage1_lr"] = tkp["stage1_lr"]
    if variant in ("exponential", "l2"):
        settings["beta"] = tkp["beta"]
    if variant == "exponential":
        settings["alpha"] = tkp["alpha"]
    overrides = ["pruning.schedule.kind=none", *(f"tkp.{key}={value}" for key, value in settings.items())]
    return _last_row(job(base, overrides))


def channel_cell(base: dict, mac_ratio: float, epochs: int) -> dict:
    return _last_row(job(base, ["pruning.schedule.kind=mac_target", "pruning.schedule.steps=1",
                                f"pruning.schedule.mac_target={mac_ratio:.4f}", f"recovery.epochs={epochs}"]))


def _last_row(config) -> dict:
    started = time.perf_counter()
    row = run(config, directory=Path(config.storage.root) / "bench-tkp" / str(os.getpid())).rows[-1].to_dict()
    row["wall"] = time.perf_counter() - started
    print(f"  {row['phase']}: effective MACs {row['effective_mac_ratio']:.3f}, MACs {row['mac_ratio']:.3f}, "
          f"{row['pre_accuracy']:.4f} -> {row['accuracy']:.4f} ({row['wall']:.0f} s)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="examples/digits_tkp.yaml")
    parser.add_argument("--topk", default="1,2,4")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--stage1", type=int, default=4)
    parser.add_argument("--alpha", type=float, help="the exponential penalty's falloff (default: the config's)")
    parser.add_argument("--out", default="bench/results/tkp.md")
    args = parser.parse_args()
    raw = read_yaml(Path(args.config))
    tkp = validate_config(raw).tkp.model_dump()
    tkp["alpha"] = tkp["alpha"] if args.alpha is None else args.alpha
    base = {key: value for key, value in raw.items() if key != "tkp"}
    lr = validate_config(base).recovery.lr
    variants = args.variants.split(",")
    started, load = time.perf_counter(), os.getloadavg()
    results = []
    for topk in (int(k) for k in args.topk.split(",")):
        cells = {}
        for variant in variants:
            print(f"K={topk} {variant}", flush=True)
            cells[variant] = tkp_cell(base, topk, variant, args.epochs, args.stage1, tkp, lr)
        ratio = next(iter(cells.values()))["effective_mac_ratio"]
        print(f"K={topk} channel", flush=True)
        cells["channel"] = channel_cell(base, ratio, args.epochs)
        results.append({"topk": topk, "effective_mac_ratio": ratio, "cells": cells})
        write_table(args, base, tkp, lr, variants, results, started, load)  # after each K: a partial table survives


def write_table(args, base: dict, tkp: dict, lr: float, variants: list[str], results: list[dict], started: float,
                load: tuple[float, float, float]) -> None:
    config = validate_config(base)
    baseline = results[0]["cells"][variants[0]]
    lines = [
        (f"TKP against channel pruning: {config.model.name} on {config.data.name} {config.data.image_size}px, dense "
         f"val accuracy {baseline['baseline_accuracy']:.4f} ({baseline['baseline_macs']:,} MACs); {args.epochs} "
         f"training epochs per cell (two-stage: {args.stage1} + {args.epochs - args.stage1}); beta "
         f"{tkp['beta']:g}, alpha {tkp['alpha']:g}, stage-1 lr {tkp['stage1_lr']:g}, stage-2 / recovery lr {lr:g}; "
         f"distillation kd_alpha {config.recovery.kd_alpha:g}."),
        (f"Machine: {platform.machine()} {platform.node()}, {os.cpu_count()} cores, torch {torch.__version__}, "
         f"{time.strftime('%Y-%m-%d')}, load average at start {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, at end "
         f"{os.getloadavg()[0]:.1f}; {time.perf_counter() - started:.0f} s for the table."),
        (f"Command: `.venv/bin/python bench/tkp.py {args.config} --topk {args.topk} --variants '{args.variants}' "
         f"--epochs {args.epochs} --stage1 {args.stage1}{'' if args.alpha is None else f' --alpha {args.alpha:g}'}`"),
        "",
        ("Each cell: accuracy after the mask or cut (BN recalibrated) -> after training. Channel: one cut to the "
         "TKP rows' effective MAC ratio (its dense MAC ratio in brackets)."),
        "",
        "| K | effective MACs | " + " | ".join(variants) + " | channel |",
        "| --- | --- | " + " | ".join("---" for _ in variants) + " | --- |",
    ]
    for result in results:
        cells = result["cells"]
        best = max(cell["accuracy"] for cell in cells.values())

        def show(cell: dict, best: float = best) -> str:
            final = f"**{cell['accuracy']:.4f}**" if cell["accuracy"] == best else f"{cell['accuracy']:.4f}"
            return f"{cell['pre_accuracy']:.4f} -> {final}"

        channel = cells["channel"]
        lines.append(f"| {result['topk']} | {result['effective_mac_ratio']:.3f} | "
                     + " | ".join(show(cells[v]) for v in variants)
                     + f" | {show(channel)} ({channel['mac_ratio']:.3f}) |")
    write_outputs(Path(args.out), lines, results)


if __name__ == "__main__":
    main()
