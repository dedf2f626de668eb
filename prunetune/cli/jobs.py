"""Commands on one job: baseline (train or reuse) and run (prune and recover once, without Ray)."""

from __future__ import annotations

import shlex
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
    from prunetune.results.tables import count_format

    job = load_config(config, overrides or [])
    out.print(f"baseline: {job.model.name} on {job.data.name} ({job.data.image_size}px), "
              f"{job.baseline.epochs} epochs")
    with BaselineProgress(out) as progress:
        result = prepare_baseline(job, on_epoch=progress.epoch, on_batch=progress.batch)
    record = result.record
    state = "reused" if result.reused else f"trained in {record.train_seconds:.1f}s" if record.epochs else "measured"
    table = Table(title=f"baseline ({state})", show_header=False)
    for name, value in (
        ("val accuracy", record.accuracy_note()),
        ("val loss", f"{record.loss:.4f}"),
        ("MACs", f"{count_format([record.macs])(record.macs)} ({record.macs:,})"),
        ("params", f"{count_format([record.params])(record.params)} ({record.params:,})"),
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
              f"{', compensation' if pruning.compensation else ''}{_tkp_summary(job.tkp)}", highlight=False,
              soft_wrap=True)
    # A single run ranks and times its steps as a search of this job would.
    result = run(job, report=_print_step, directory=directory, on_epoch=_print_recovery_epoch,
                 on_baseline=print_baseline, objective=OBJECTIVES.get(job.search.objectives))
    out.print(results_table(result))
    best = result.rows[-1] if result.rows else None
    if best is not None and best.best_step is not None:
        effective = (f", effective MACs {best.best_effective_macs:,} (theoretical)"
                     if best.best_effective_macs != best.best_macs else "")
        out.print(f"best feasible: step {best.best_step}, accuracy {best.best_accuracy:.4f}, "
                  f"MACs {best.best_macs:,} ({best.best_mac_ratio:.1%} of baseline){effective}", highlight=False)
        out.print(f"export it: prunetune export {shlex.quote(str(result.directory))} -o model.pt --pt2  "
                  "(--step N for its last step; a run keeps its best and its last step)",
                  highlight=False, markup=False)
    else:
        out.print("no step stayed above the threshold", highlight=False)
    out.print(f"rows: {result.directory / 'rows.parquet'}", highlight=False)


def results_table(result) -> Table:
    """Seed 001's table: target -> accuracy, MACs, with the baseline first; one format per column
    (results/tables.py: accuracy 4 decimals, ratios as %, counts in one unit per column). With a
    TKP row, also its effective MAC ratio (theoretical: dense kernels still do the work), the
    cost the best step is ranked by."""
    from prunetune.results.tables import accuracy_text, count_format, percent_text

    effective = any(row.effective_mac_ratio != row.mac_ratio for row in result.rows)
    table = Table(title=f"prune-and-recover (threshold {accuracy_text(result.threshold)})")
    for column in ("step", "target", "sparsity", "pre-recovery acc", "accuracy", "MACs", "MAC ratio",
                   *["eff. MAC ratio (theoretical)"] * effective, "params", "epochs (best)", "time", "feasible"):
        table.add_column(column, justify="right")
    macs = count_format([result.baseline_macs, *(row.macs for row in result.rows)])
    params = count_format([result.baseline_params, *(row.params for row in result.rows)])
    table.add_row("baseline", percent_text(0.0), percent_text(0.0), "", accuracy_text(result.baseline_accuracy),
                  macs(result.baseline_macs), percent_text(1.0), *[percent_text(1.0)] * effective,
                  params(result.baseline_params), "", "", "")
    for row in result.rows:
        step = f"{row.step} {row.phase}" if row.phase != "prune" else str(row.step)
        table.add_row(step, percent_text(row.target_sparsity), percent_text(row.sparsity),
                      accuracy_text(row.pre_accuracy), accuracy_text(row.accuracy), macs(row.macs),
                      percent_text(row.mac_ratio), *[percent_text(row.effective_mac_ratio)] * effective,
                      params(row.params), f"{row.epochs_run} ({row.best_epoch})", f"{sum(row.seconds.values()):.1f}s",
                      "yes" if row.feasible else Text("no", style="red"))
    return table


def _tkp_summary(tkp) -> str:
    if not tkp.enabled:
        return ""
    kept = [f"top-{tkp.topk} per kernel"] * (tkp.topk is not None) + [f"{tkp.nm} Linear"] * (tkp.nm is not None)
    epochs = [f"{n} epoch{'s' if n != 1 else ''}" for n in (tkp.stage1_epochs, tkp.stage2_epochs)]
    return f" | TKP {' + '.join(kept)}: stage 1 {epochs[0]} ({tkp.reg_type}), stage 2 {epochs[1]}"


def print_baseline(info: dict[str, Any]) -> None:
    """The [baseline] line of a run or search: ``Baseline.summary``."""
    threshold = "per trial (stop.* is searched)" if info["threshold"] is None else f"{info['threshold']:.4f}"
    out.print(f"[baseline] {info['state']}: accuracy {info['note']}, MACs {info['macs']:,}, threshold {threshold}",
              highlight=False, markup=False)


def _print_recovery_epoch(row: dict[str, Any]) -> None:
    out.print(f"    epoch {row['epoch']}/{row['epochs']} lr {row['lr']:.2e} train loss {row['train_loss']:.4f} "
              f"| val acc {row['val_accuracy']:.4f}{' *' if row['best'] else ''}", highlight=False, markup=False)


def _print_step(row: dict[str, Any]) -> None:
    later = row.get("phase") in ("final", "tkp")  # no cut follows either
    verdict = "ok" if row["feasible"] else "below threshold" if later else "BELOW THRESHOLD, stopping"
    step = {"final": f"step {row['step']} final fine-tuning", "tkp": f"step {row['step']} TKP"}.get(
        row.get("phase"), f"step {row['step']}")
    effective = f" (effective {row['effective_mac_ratio']:.1%}, theoretical)" if row.get("phase") == "tkp" else ""
    out.print(f"[{step}] target {row['target_sparsity']:.2f} -> sparsity {row['sparsity']:.3f}, "
              f"MACs {row['mac_ratio']:.1%}{effective}, acc {row['pre_accuracy']:.4f} -> {row['accuracy']:.4f} "
              f"(best epoch {row['best_epoch']}/{row['epochs_run']}), {row['seconds_total']:.1f}s: {verdict}",
              highlight=False, markup=False)
