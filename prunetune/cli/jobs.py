"""Commands on one job: baseline (train or reuse) and run (prune and recover once, without Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from prunetune.cli.app import ConfigArg, OverridesArg, app, out, user_facing
from prunetune.cli.progress import BaselineProgress


@app.command()
@user_facing
def baseline(config: ConfigArg, overrides: OverridesArg = None) -> None:
    """Train (or reuse) the unpruned model, evaluate it, write model.pt and baseline.json."""
    from prunetune.baseline import prepare_baseline
    from prunetune.config import load_config

    job = load_config(config, overrides or [])
    out.print(f"baseline: {job.model.name} on {job.data.name} ({job.data.image_size}px), "
              f"{job.baseline.epochs} epochs")
    with BaselineProgress(out) as progress:
        result = prepare_baseline(job, on_epoch=progress.epoch, on_batch=progress.batch)
    record = result.record
    state = "reused" if result.reused else f"trained in {record.train_seconds:.1f}s"
    table = Table(title=f"baseline ({state})", show_header=False)
    for name, value in (
        ("val accuracy", f"{record.accuracy:.4f}"),
        ("val loss", f"{record.loss:.4f}"),
        ("MACs", f"{record.macs:,} ({record.macs / 1e6:.2f}M)"),
        ("params", f"{record.params:,} ({record.params / 1e6:.2f}M)"),
        ("device", record.device),
        ("directory", str(result.directory)),
    ):
        table.add_row(name, value)
    out.print(table)


@app.command("run")
@user_facing
def run_pipeline(
    config: ConfigArg,
    overrides: OverridesArg = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="run directory (default: STORAGE/NAME-TIME)")] = None,
) -> None:
    """Run the prune-and-recover pipeline once, without Ray: one row per step, a results table."""
    from prunetune.config import load_config
    from prunetune.objectives import OBJECTIVES
    from prunetune.pipeline import run

    job = load_config(config, overrides or [])
    pruning = job.pruning
    out.print(f"run: {job.model.name} on {job.data.name} ({job.data.image_size}px) | scope {pruning.scope}, "
              f"criterion {pruning.criterion}, schedule {pruning.schedule.kind}, repair {pruning.repair}"
              f"{', compensation' if pruning.compensation else ''}", highlight=False, soft_wrap=True)
    # A single run ranks and times its steps as a search of this job would.
    result = run(job, report=_print_step, directory=directory, on_epoch=_print_recovery_epoch,
                 on_baseline=_print_baseline, objective=OBJECTIVES.get(job.search.objectives))
    out.print(results_table(result))
    best = result.rows[-1] if result.rows else None
    if best is not None and best.best_step is not None:
        out.print(f"best feasible: step {best.best_step}, accuracy {best.best_accuracy:.4f}, "
                  f"MACs {best.best_macs:,} ({best.best_mac_ratio:.1%} of baseline)", highlight=False)
    else:
        out.print("no step stayed above the threshold", highlight=False)
    out.print(f"rows: {result.directory / 'rows.parquet'}", highlight=False)


def results_table(result) -> Table:
    """Seed 001's table: target -> accuracy, MACs, with the baseline first."""
    table = Table(title=f"prune-and-recover (threshold {result.threshold:.4f})")
    for column in ("step", "target", "sparsity", "pre-recovery acc", "accuracy", "MACs", "MAC ratio", "params",
                   "epochs (best)", "time", "feasible"):
        table.add_column(column, justify="right")
    table.add_row("baseline", "0.00", "0.000", "", f"{result.baseline_accuracy:.4f}", f"{result.baseline_macs:,}",
                  "1.000", f"{result.baseline_params:,}", "", "", "")
    for row in result.rows:
        step = f"{row.step} final" if row.phase == "final" else str(row.step)
        table.add_row(step, f"{row.target_sparsity:.2f}", f"{row.sparsity:.3f}", f"{row.pre_accuracy:.4f}",
                      f"{row.accuracy:.4f}", f"{row.macs:,}", f"{row.mac_ratio:.3f}", f"{row.params:,}",
                      f"{row.epochs_run} ({row.best_epoch})", f"{sum(row.seconds.values()):.1f}s",
                      "yes" if row.feasible else Text("no", style="red"))
    return table


def _print_baseline(info: dict[str, Any]) -> None:
    state = "reused" if info["reused"] else "trained"
    out.print(f"[baseline] {state}: accuracy {info['accuracy']:.4f}, MACs {info['macs']:,}, "
              f"threshold {info['threshold']:.4f}", highlight=False, markup=False)


def _print_recovery_epoch(row: dict[str, Any]) -> None:
    out.print(f"    epoch {row['epoch']}/{row['epochs']} lr {row['lr']:.2e} train loss {row['train_loss']:.4f} "
              f"| val acc {row['val_accuracy']:.4f}{' *' if row['best'] else ''}", highlight=False, markup=False)


def _print_step(row: dict[str, Any]) -> None:
    final = row.get("phase") == "final"
    verdict = "ok" if row["feasible"] else "below threshold" if final else "BELOW THRESHOLD, stopping"
    step = f"step {row['step']} final fine-tuning" if final else f"step {row['step']}"
    out.print(f"[{step}] target {row['target_sparsity']:.2f} -> sparsity {row['sparsity']:.3f}, "
              f"MACs {row['mac_ratio']:.1%}, acc {row['pre_accuracy']:.4f} -> {row['accuracy']:.4f} "
              f"(best epoch {row['best_epoch']}/{row['epochs_run']}), {row['seconds_total']:.1f}s: {verdict}",
              highlight=False, markup=False)
