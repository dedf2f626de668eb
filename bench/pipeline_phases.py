"""One trial's time by phase, and the recovery loop's speed next to a minimal hand-written loop.

    .venv/bin/python bench/pipeline_phases.py [CONFIG] [overrides...] [--out bench/results/pipeline_phases.md]

Part 1 runs the pipeline once (CONFIG, default the seed-001 example cut to three steps
of two epochs) and splits its wall time into the phases the rows report, plus whatever
the rows do not cover (baseline loading, graph building, saving: "other").
Part 2 times recovery epochs (``train_epoch`` with the distillation loss, as the
pipeline runs them) against a minimal loop doing the same work -- same model, data,
batch size, precision, teacher forward, AdamW -- in the same process, in images/s.
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
from prunetune.pipeline import PHASES, distillation_loss, run
from prunetune.pipeline.recovery import make_loss
from prunetune.training import make_optimizer, train_epoch

DEFAULT_OVERRIDES = ["pruning.schedule.targets=[0.2,0.4,0.6]", "recovery.epochs=2", "recovery.patience=null",
                     "stop.max_accuracy_drop=1.0"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def phases(config) -> tuple[dict[str, float], float]:
    started = time.perf_counter()
    result = run(config, directory=Path(config.storage.root) / "bench-phases")
    wall = time.perf_counter() - started
    totals = {phase: sum(row.seconds[phase] for row in result.rows) for phase in PHASES}
    totals["other"] = wall - sum(totals.values())
    return totals, wall


def throughput(config, epochs: int = 3) -> tuple[float, float]:
    baseline = prepare_baseline(config)
    runtime, loader = baseline.runtime, baseline.loaders.train
    teacher = baseline.model.eval().requires_grad_(False)
    recovery = config.recovery
    images_per_epoch = sum(len(labels) for _, labels in loader)

    def pipeline_loop() -> float:
        student = copy.deepcopy(teacher).requires_grad_(True)
        optimizer = make_optimizer(student, recovery.optimizer, recovery.lr, recovery.weight_decay, device=runtime.device)
        loss = make_loss(teacher, recovery.kd_alpha, recovery.kd_temperature)
        train_epoch(student, loader, optimizer, loss, runtime)  # warm-up epoch, not timed
        _sync(runtime.device)
        started = time.perf_counter()
        for _ in range(epochs):
            train_epoch(student, loader, optimizer, loss, runtime)
        _sync(runtime.device)
        return epochs * images_per_epoch / (time.perf_counter() - started)

    def minimal_loop() -> float:
        student = copy.deepcopy(teacher).requires_grad_(True).train()
        optimizer = torch.optim.AdamW(student.parameters(), lr=recovery.lr, weight_decay=recovery.weight_decay)

        def one_epoch() -> None:
            for images, labels in loader:
                images, labels = images.to(runtime.device), labels.to(runtime.device)
                with runtime.autocast():
                    logits = student(images)
                    with torch.no_grad():
                        soft = teacher(images)
                    loss = distillation_loss(logits, soft, labels, recovery.kd_alpha, recovery.kd_temperature)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

        one_epoch()
        _sync(runtime.device)
        started = time.perf_counter()
        for _ in range(epochs):
            one_epoch()
        _sync(runtime.device)
        return epochs * images_per_epoch / (time.perf_counter() - started)

    return pipeline_loop(), minimal_loop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="examples/seed001_run6.yaml")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--out", default="bench/results/pipeline_phases.md")
    args = parser.parse_args()
    overrides = args.overrides or DEFAULT_OVERRIDES
    config = load_config(args.config, overrides)
    totals, wall = phases(config)
    pipeline_rate, minimal_rate = throughput(config)
    device = "cuda: " + torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    lines = [
        f"Machine: {platform.machine()} {platform.node()}, {device}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}.",
        f"Command: `.venv/bin/python bench/pipeline_phases.py {args.config} {' '.join(overrides)}`",
        "",
        f"One trial ({config.model.name}, {config.data.name} {config.data.image_size}px, "
        f"{len(config.pruning.schedule.targets)} steps x {config.recovery.epochs} epochs): {wall:.1f} s",
        "",
        "| phase | seconds | fraction |",
        "| --- | --- | --- |",
        *[f"| {phase} | {seconds:.2f} | {seconds / wall:.1%} |" for phase, seconds in totals.items()],
        "",
        "| recovery loop | images/s |",
        "| --- | --- |",
        f"| pipeline (train_epoch + distillation loss) | {pipeline_rate:,.0f} |",
        f"| minimal hand-written loop, same work | {minimal_rate:,.0f} |",
        f"| ratio | {pipeline_rate / minimal_rate:.2f} |",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
