"""Commands on a search: search, resume, status."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from prunetune.cli.app import ConfigArg, OverridesArg, StorageOpt, app, out, print_table, user_facing
from prunetune.cli.jobs import print_baseline
from prunetune.cli.progress import BaselineProgress, search_view


def _driver_environment() -> None:
    """Tune's settings for a prunetune driver; set before Ray is imported, which is when Tune reads them.

    A search reports once per pruning step, seconds to minutes apart. Tune warns ("Processing
    trial results took 0.7 s, which may be a performance bottleneck. Please consider reporting
    results less frequently") from 0.5 s of driver-side work per result, a threshold meant for
    per-iteration reports, and a busy machine crosses it with the store's fsync; 5 s still
    flags a driver that is really stuck. A user's own TUNE_WARN_THRESHOLD_S wins.
    """
    os.environ.setdefault("TUNE_WARN_THRESHOLD_S", "5")


@app.command()
@user_facing
def search(
    config: ConfigArg,
    overrides: OverridesArg = None,
    name: Annotated[str | None, typer.Option(help="search name (default: the config's name)")] = None,
    num_samples: Annotated[int | None, typer.Option("--num-samples", help="trials to complete")] = None,
    address: Annotated[str | None, typer.Option(help="join this Ray cluster (default: a local Ray)")] = None,
    storage: Annotated[str | None, typer.Option(
        help="storage root (sets the config's storage.root): a folder, NFS path or URI (s3://...)")] = None,
    warm_start: Annotated[str | None, typer.Option(
        "--warm-start", help="an earlier search of the same baseline whose finished trials the sampler learns from "
        "before its first proposal (found under --storage, else this config's storage.root, ./runs, then the index "
        "of searches)")] = None,
) -> None:
    """Search the pipeline's settings with Ray Tune + Optuna; print the Pareto front."""
    _driver_environment()
    from prunetune.search import run_search
    from prunetune.spaces import load_search

    job, space = load_search(config, list(overrides or []) + ([f"storage.root={storage}"] if storage else []))
    out.print(f"search {name or job.name}: {num_samples or job.search.num_samples} trials, objectives "
              f"{job.search.objectives}, sampler {job.search.sampler}, {len(space)} searched settings", highlight=False)
    with search_view(out, name or job.name) as view, BaselineProgress(out) as baseline:
        outcome = run_search(job, space, name=name, num_samples=num_samples, address=address,
                             on_epoch=baseline.epoch, on_batch=baseline.batch, on_baseline=print_baseline, view=view,
                             warm_start=warm_start, storage=storage,
                             on_warm_start=lambda warm: out.print(warm.describe(), highlight=False, markup=False))
    _print_outcome(outcome)


@app.command()
@user_facing
def resume(
    name: Annotated[str, typer.Argument(help="name of the search to continue")],
    storage: StorageOpt = None,
    errored: Annotated[bool, typer.Option("--errored", help="also re-run trials that failed")] = False,
    address: Annotated[str | None, typer.Option(help="join this Ray cluster (default: a local Ray)")] = None,
) -> None:
    """Continue an interrupted or killed search until it has its requested trials."""
    _driver_environment()
    from prunetune.search import resume_search

    with search_view(out, name) as view:
        outcome = resume_search(name, storage, resume_errored=errored, address=address, view=view)
    _print_outcome(outcome)


@app.command()
@user_facing
def status(
    name: Annotated[str, typer.Argument(help="name of the search")],
    storage: StorageOpt = None,
) -> None:
    """Done / running / failed trials of a search and its best trials so far."""
    from prunetune.search import search_status

    _print_outcome(search_status(name, storage), final=False)


def _print_outcome(outcome, final: bool = True) -> None:
    from prunetune.results import front_table, load, pareto_front
    from prunetune.home import STORE_NAME, search_command
    from prunetune.results.store import journal_path

    summary = outcome.summary
    driver = outcome.driver
    # A driver that is gone runs nothing: its RUNNING trials stop being so on the next resume.
    if driver is not None and driver.alive:
        running = f"{summary.running} running"
    elif driver is not None:
        running = f"{summary.running} interrupted, {driver.describe()}"
    else:
        running = f"{summary.running} interrupted" if summary.running else "0 running"
    stopped = f", {summary.stopped} stopped at a rung" if outcome.rungs is not None else ""
    stopped += f"; {summary.warm_started} more from a warm start" if summary.warm_started else ""
    out.print(f"{outcome.name}: {summary.finished}/{outcome.requested} finished ({summary.complete} with a feasible "
              f"step, {summary.no_feasible_step} without{stopped}), {summary.failed} failed, {running}",
              highlight=False, markup=False)
    if outcome.rungs is not None:
        _print_rungs(outcome.rungs)
    store = outcome.home / STORE_NAME
    rows = load(outcome.home) if store.is_file() or journal_path(store).is_file() else None
    if rows is not None and not rows.empty:
        front = front_table(pareto_front(rows))
        print_table(front, f"Pareto front over every trial's steps: {len(front)} of {len(rows)} steps")
    for number, error in summary.errors.items():
        out.print(f"trial {number} failed: {error.strip().splitlines()[-1] if error.strip() else 'no message'}",
                  highlight=False, markup=False)
    name, storage = outcome.name, outcome.storage
    out.print(f"home: {outcome.home}  (next: {search_command('pareto', name, storage)} | "
              f"{search_command('report', name, storage, '-o', 'DIR')} | "
              f"{search_command('export', name, storage, '--trial', 'T', '--step', 'S', '-o', 'model.pt')})",
              highlight=False, markup=False)
    if final and outcome.interrupted:
        out.print(f"interrupted: continue with `{search_command('resume', name, storage)}`", highlight=False,
                  markup=False)
        raise typer.Exit(130)


def _print_rungs(report) -> None:
    import pandas as pd

    settings = report.settings
    table = pd.DataFrame([{"rung": rung, settings.ratio_name: f"{count.level:g}", "recorded": count.recorded,
                           "stopped": len(count.stopped), "stopped trials": ", ".join(map(str, count.stopped)) or "-",
                           "best accuracy": count.best_text} for rung, count in enumerate(report.counts)])
    print_table(table, f"Cost rungs ({settings.ratio_name}s, reduction factor {settings.reduction_factor:g}, "
                f"grace {settings.grace}): {report.stopped} trial{'' if report.stopped == 1 else 's'} stopped")

