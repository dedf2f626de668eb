"""One-shot pruning of a trained model without fine-tuning: repair x criterion x sparsity.

    .venv/bin/python bench/oneshot_repair.py [CONFIG] [--scope expand] [--out bench/results/oneshot_repair.md]

CONFIG defaults to the embedded demo (examples/digits_baseline.yaml); its baseline is
trained first if ``runs/`` does not hold it. Each cell prunes a fresh copy of the
baseline to the sparsity in one step, applies the repair on the calibration split and
reports validation accuracy with no training at all. Columns ``+comp`` also fold the
pruned channels' input means into their consumers first (``pruning.compensation``): under a
recalibrating repair only consumers that no BN normalises change (docs/pruning.md).
"""

from __future__ import annotations

import argparse
import copy
import platform
import time
from pathlib import Path

import torch

from prunetune.baseline import prepare_baseline
from prunetune.config import load_config
from prunetune.pruning import Pruner, RepairContext, dense_reference, repair
from prunetune.pruning.statistics import collect_calibration
from prunetune.training import evaluate

SPARSITIES = (0.3, 0.5, 0.7, 0.9)
# (repair, compensation): every repair alone, and compensation where it can change the model.
VARIANTS = (("none", False), ("none", True), ("bn", False), ("bn", True), ("layerwise", False), ("asr", False),
            ("asr", True))
CRITERIA = ("l1", "vbp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="examples/digits_baseline.yaml")
    parser.add_argument("--scope", default="expand")
    parser.add_argument("--out", default="bench/results/oneshot_repair.md")
    args = parser.parse_args()
    config = load_config(args.config, [f"pruning.scope={args.scope}"])
    baseline = prepare_baseline(config)
    runtime, loaders = baseline.runtime, baseline.loaders
    batches = config.pruning.calibration_batches
    example = next(iter(loaders.calibration))[0][:1]
    reference = dense_reference(baseline.model, loaders.calibration, runtime, batches)
    dense_accuracy = evaluate(baseline.model, loaders.val, runtime).accuracy
    rows = []
    started = time.perf_counter()
    for criterion in CRITERIA:
        for sparsity in SPARSITIES:
            cells = []
            for kind, compensation in VARIANTS:
                pruning = load_config(args.config, [f"pruning.scope={args.scope}", f"pruning.criterion={criterion}",
                                                    f"pruning.repair={kind}",
                                                    f"pruning.compensation={str(compensation).lower()}"]).pruning
                model = copy.deepcopy(baseline.model).eval()
                pruner = Pruner(model, example, pruning, seed=config.seed)
                groups = pruner.groups()
                stats, means = collect_calibration(model, loaders.calibration, runtime, batches,
                                                   groups=groups if pruner.criterion.needs_stats else None,
                                                   consumers=pruner.consumers(groups) if compensation else None)
                pruner.step(sparsity, stats=stats, consumer_means=means or None)
                repair(kind, RepairContext(
                    model=model, runtime=runtime, recalibration=loaders.calibration,
                    samples=pruning.recalibration_samples, calibration=loaders.calibration, calibration_batches=batches,
                    reference=reference, kept=pruner.kept_channels(), asr_lambda=pruning.asr_lambda))
                cells.append(evaluate(model, loaders.val, runtime).accuracy)
            rows.append((criterion, sparsity, cells))
            print(criterion, sparsity, " ".join(f"{c:.4f}" for c in cells), flush=True)
    lines = [
        f"One-shot pruning without fine-tuning: {config.model.name} on {config.data.name} "
        f"{config.data.image_size}px, scope {args.scope}, dense val accuracy {dense_accuracy:.4f}.",
        f"Repair on the calibration split ({pruning.recalibration_samples} samples for BN recalibration, "
        f"{batches} batches for variances), ASR lambda = {pruning.asr_lambda} x layer median.",
        f"Machine: {platform.machine()} {platform.node()}, torch {torch.__version__}, device {runtime.device}, "
        f"{time.strftime('%Y-%m-%d')}, {time.perf_counter() - started:.0f} s for the table.",
        f"Command: `.venv/bin/python bench/oneshot_repair.py {args.config} --scope {args.scope}`",
        "",
        "| criterion | sparsity | " + " | ".join(kind + (" +comp" if comp else "") for kind, comp in VARIANTS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in VARIANTS) + " |",
    ]
    for criterion, sparsity, cells in rows:
        best = max(cells)
        shown = [f"**{c:.4f}**" if c == best else f"{c:.4f}" for c in cells]
        lines.append(f"| {criterion} | {sparsity:.0%} | " + " | ".join(shown) + " |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
