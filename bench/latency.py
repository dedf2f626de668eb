"""Is MACs an honest cost? Measured inference latency of pruned models against their MAC ratio.

    .venv/bin/python bench/latency.py [--models resnet18,resnet50,mobilenet_v2,mobilenet_v3_small]
        [--targets 0.75,0.5,0.25] [--scopes expand,all] [--size 224] [--repeats 30] [--round-to 8]
        [--out bench/results/latency.md]

Each model (torchvision, random weights, 1000 classes) is pruned one-shot with l1 to each
MAC-retention target through the MAC-target solver (bisection on the real counter), then
timed: CPU batch 1 fp32 (all torch threads) and, where CUDA is available, batch 256 bf16
channels_last. Latency is the median of ``--repeats`` timed calls after warm-up, with the
interquartile range. A scope that cannot reach a target (the expand scope holds only part
of the MACs) is reported with the ratio it reached. ``latency ratio / MAC ratio`` near 1
means MACs predicts the speed-up; well above 1 means pruning saves less time than MACs say.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torchvision

from common import write_outputs

from prunetune.config import PruningConfig
from prunetune.models.complexity import measure
from prunetune.pruning import Pruner
from prunetune.pruning.schedules import solve_mac_target


def timed(model: torch.nn.Module, batch: torch.Tensor, repeats: int, cuda: bool) -> tuple[float, float]:
    """Median and IQR of one forward, in milliseconds."""
    samples = []
    with torch.inference_mode():
        for index in range(repeats + max(3, repeats // 5)):
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
            model(batch)
            if cuda:
                torch.cuda.synchronize()
            if index >= max(3, repeats // 5):  # warm-up calls are not counted
                samples.append((time.perf_counter() - started) * 1e3)
    quartiles = statistics.quantiles(samples, n=4)
    return statistics.median(samples), quartiles[2] - quartiles[0]


def devices(size: int) -> list[tuple[str, torch.Tensor, bool]]:
    found = [("cpu b1 fp32", torch.randn(1, 3, size, size), False)]
    if torch.cuda.is_available():
        found.append(("cuda b256 bf16", torch.randn(256, 3, size, size, device="cuda").to(
            memory_format=torch.channels_last), True))
    return found


def prepared(model: torch.nn.Module, cuda: bool) -> torch.nn.Module:
    model = copy.deepcopy(model).eval()
    if cuda:
        return model.to("cuda", memory_format=torch.channels_last).to(torch.bfloat16)
    return model


def run_case(name: str, scope: str, target: float | None, args, dense_macs: dict) -> dict:
    torch.manual_seed(0)
    model = torchvision.models.get_model(name, num_classes=1000).eval()
    example = torch.randn(1, 3, args.size, args.size)
    config = PruningConfig(scope=scope, criterion="l1", round_to=args.round_to)
    solve_seconds = 0.0
    if target is not None:
        started = time.perf_counter()
        pruner = Pruner(model, example, config, seed=0)
        scores = pruner.scores()
        sparsity, _ = solve_mac_target(lambda m: Pruner(m, example, config, seed=0), model, 3, args.size, target,
                                       scores, tolerance=0.02, iterations=12)
        pruner.step(sparsity, scores=scores)
        solve_seconds = time.perf_counter() - started
    complexity = measure(model, 3, args.size)
    dense_macs.setdefault(name, complexity.macs)
    row = {"model": name, "scope": scope if target is not None else "dense", "target": target,
           "mac_ratio": complexity.macs / dense_macs[name], "macs": complexity.macs, "params": complexity.params,
           "solve_seconds": solve_seconds}
    for label, batch, cuda in devices(args.size):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            row[label] = timed(prepared(model, cuda), batch.to(torch.bfloat16) if cuda else batch, args.repeats, cuda)
    return row


def table(rows: list[dict]) -> list[str]:
    labels = [label for label in ("cpu b1 fp32", "cuda b256 bf16") if label in rows[0]]
    header = ["model", "scope", "MAC target", "MAC ratio"]
    for label in labels:
        header += [f"{label} ms (IQR)", "latency ratio", "latency / MAC ratio"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    dense = {row["model"]: row for row in rows if row["scope"] == "dense"}
    for row in rows:
        cells = [row["model"], row["scope"], "-" if row["target"] is None else f"{row['target']:.2f}",
                 f"{row['mac_ratio']:.3f}"]
        for label in labels:
            median, spread = row[label]
            ratio = median / dense[row["model"]][label][0]
            cells += [f"{median:.2f} ({spread:.2f})", f"{ratio:.3f}", f"{ratio / row['mac_ratio']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet50,mobilenet_v2,mobilenet_v3_small")
    parser.add_argument("--targets", default="0.75,0.5,0.25")
    parser.add_argument("--scopes", default="expand,all")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--round-to", type=int, default=None, help="keep channel counts multiples of this")
    parser.add_argument("--out", type=Path, default=Path("bench/results/latency.md"))
    args = parser.parse_args()
    targets = [float(t) for t in args.targets.split(",")]
    rows, dense_macs = [], {}
    started = time.perf_counter()
    for name in args.models.split(","):
        rows.append(run_case(name, "all", None, args, dense_macs))
        for scope in args.scopes.split(","):
            for target in targets:
                rows.append(run_case(name, scope, target, args, dense_macs))
                print(json.dumps({k: v for k, v in rows[-1].items()}), flush=True)
    header = [f"# Latency against MACs ({time.strftime('%Y-%m-%d')})", "",
              f"`python bench/latency.py --models {args.models} --targets {args.targets} --scopes {args.scopes} "
              f"--size {args.size} --repeats {args.repeats}"
              + (f" --round-to {args.round_to}" if args.round_to else "") + f"`; {platform.processor() or platform.machine()}, "
              f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
              + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no CUDA")
              + f"; {time.perf_counter() - started:.0f} s in all.", ""]
    write_outputs(args.out, header + table(rows), rows)


if __name__ == "__main__":
    main()
