"""The ``prunetune`` command: parse, validate, call one function, print.

Bad input (config, paths, names) exits 2 with one message and no traceback; a run that
fails exits 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table
from rich.text import Text

from prunetune.errors import PrunetuneError

PACKAGE = Path(__file__).resolve().parent

app = typer.Typer(
    name="prunetune",
    help="Find the best way to prune a convolutional network: a Ray Tune + Optuna search over "
    "prune-and-recover pipelines, with a Pareto front of accuracy against MACs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped or logged output gets wide tables; a terminal keeps its own width. Markup is off:
# what is printed holds user text (names, paths, "needs [low, high]"), which Rich would
# read as tags and drop; styles are given as rich.text.Text.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160, markup=False)
err = Console(stderr=True, markup=False)

ConfigArg = Annotated[Path, typer.Argument(help="YAML config of the job (see examples/ and the README).")]
OverridesArg = Annotated[
    list[str] | None, typer.Argument(help="Overrides of config fields, e.g. baseline.epochs=5 data.name=shapes.")
]


def user_facing(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn prunetune's errors into a message and an exit code instead of a traceback, and its
    warnings into one line each."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
                return command(*args, **kwargs)
        except PrunetuneError as error:
            err.print(Text.assemble(("error:", "bold red"), f" {error}"), highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _show_warning(shown_before: Callable[..., None], message: Warning | str, category: type[Warning],
                  filename: str, *args: Any, **kwargs: Any) -> None:
    # prunetune's own warnings are messages to the user; the line of code that raised them is not.
    if Path(filename).resolve().is_relative_to(PACKAGE):
        err.print(Text.assemble(("warning:", "yellow"), f" {message}"), highlight=False, soft_wrap=True)
    else:
        shown_before(message, category, filename, *args, **kwargs)


@app.command()
@user_facing
def baseline(config: ConfigArg, overrides: OverridesArg = None) -> None:
    """Train (or reuse) the unpruned model, evaluate it, write model.pt and baseline.json."""
    from prunetune.baseline import prepare_baseline
    from prunetune.config import load_config

    job = load_config(config, overrides or [])
    out.print(f"baseline: {job.model.name} on {job.data.name} ({job.data.image_size}px), "
              f"{job.baseline.epochs} epochs")
    result = prepare_baseline(job, on_epoch=_print_epoch)
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


def _print_epoch(row: dict[str, Any]) -> None:
    out.print(
        f"[baseline | epoch {row['epoch']}/{row['epochs']}] train loss {row['train_loss']:.4f} "
        f"acc {row['train_accuracy']:.4f} | val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f} "
        f"| time {row['seconds']:.1f}s",
        highlight=False,
        markup=False,
    )


@app.command("run")
@user_facing
def run_pipeline(
    config: ConfigArg,
    overrides: OverridesArg = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="run directory (default: STORAGE/runs/NAME-TIME)")] = None,
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


@app.command()
@user_facing
def search(
    config: ConfigArg,
    overrides: OverridesArg = None,
    name: Annotated[str | None, typer.Option(help="search name (default: the config's name)")] = None,
    num_samples: Annotated[int | None, typer.Option("--num-samples", help="trials to complete")] = None,
    address: Annotated[str | None, typer.Option(help="join this Ray cluster (default: a local Ray)")] = None,
    storage: Annotated[str | None, typer.Option(help="storage root: a folder, NFS path or URI (s3://...)")] = None,
) -> None:
    """Search the pipeline's settings with Ray Tune + Optuna; print the Pareto front."""
    from prunetune.search import run_search
    from prunetune.spaces import load_search

    job, space = load_search(config, list(overrides or []) + ([f"storage.root={storage}"] if storage else []))
    out.print(f"search {name or job.name}: {num_samples or job.search.num_samples} trials, objectives "
              f"{job.search.objectives}, sampler {job.search.sampler}, {len(space)} searched settings", highlight=False)
    _print_outcome(run_search(job, space, name=name, num_samples=num_samples, address=address, on_epoch=_print_epoch))


@app.command()
@user_facing
def resume(
    name: Annotated[str, typer.Argument(help="name of the search to continue")],
    storage: Annotated[str, typer.Option(help="storage root the search was started with")] = "runs",
    errored: Annotated[bool, typer.Option("--errored", help="also re-run trials that failed")] = False,
    address: Annotated[str | None, typer.Option(help="join this Ray cluster (default: a local Ray)")] = None,
) -> None:
    """Continue an interrupted or killed search until it has its requested trials."""
    from prunetune.search import resume_search

    _print_outcome(resume_search(name, storage, resume_errored=errored, address=address))


@app.command()
@user_facing
def status(
    name: Annotated[str, typer.Argument(help="name of the search")],
    storage: Annotated[str, typer.Option(help="storage root the search was started with")] = "runs",
) -> None:
    """Done / running / failed trials of a search and its best trials so far."""
    from prunetune.search import search_status

    _print_outcome(search_status(name, storage), final=False)


def _print_outcome(outcome, final: bool = True) -> None:
    from prunetune.results import front_table, load, pareto_front
    from prunetune.home import STORE_NAME
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
    out.print(f"{outcome.name}: {summary.finished}/{outcome.requested} finished ({summary.complete} with a feasible "
              f"step, {summary.no_feasible_step} without), {summary.failed} failed, {running}",
              highlight=False, markup=False)
    store = outcome.home / STORE_NAME
    rows = load(outcome.home) if store.is_file() or journal_path(store).is_file() else None
    if rows is not None and not rows.empty:
        front = front_table(pareto_front(rows))
        _print_table(front, f"Pareto front over every trial's steps: {len(front)} of {len(rows)} steps")
    for number, error in summary.errors.items():
        out.print(f"trial {number} failed: {error.strip().splitlines()[-1] if error.strip() else 'no message'}",
                  highlight=False, markup=False)
    out.print(f"home: {outcome.home}  (next: prunetune pareto {outcome.name} | prunetune report {outcome.name} -o DIR "
              f"| prunetune export {outcome.name} --trial T --step S -o model.pt)", highlight=False, markup=False)
    if final and outcome.interrupted:
        out.print(f"interrupted: continue with `prunetune resume {outcome.name}`", highlight=False)
        raise typer.Exit(130)


def _print_table(table, title: str) -> None:
    shown = Table(title=title)
    for column in table.columns:
        shown.add_column(str(column), justify="left" if column == "criterion" else "right")
    for values in table.itertuples(index=False):
        shown.add_row(*(str(v) for v in values))
    out.print(shown)


StorageOpt = Annotated[str, typer.Option(help="storage root the search was started with")]


def _mac_count(text: str) -> float:
    """'350M', '1.2G', '5e8' -> a MAC count."""
    scale = {"K": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:].upper(), 1.0)
    try:
        return float(text[:-1] if scale != 1.0 else text) * scale
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a MAC count (e.g. 350M, 1.2G, 5e8)") from None


@app.command()
@user_facing
def pareto(
    name: Annotated[str, typer.Argument(help="name of the search (or its folder)")],
    storage: StorageOpt = "runs",
    max_macs: Annotated[str | None, typer.Option("--max-macs", help="only points with at most these MACs (350M, 1.2G)")] = None,
    min_accuracy: Annotated[float | None, typer.Option("--min-accuracy", help="only points at least this accurate")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    include_infeasible: Annotated[bool, typer.Option("--include-infeasible", help="also steps below the threshold")] = False,
    cost: Annotated[str, typer.Option("--cost", help="macs, or latency (searches with objectives accuracy_latency)")] = "macs",
) -> None:
    """The Pareto front of accuracy against MACs (or latency) over every trial's every pruning step."""
    from prunetune.results import front_table, load, pareto_front

    if output_format not in ("table", "csv", "json"):
        raise typer.BadParameter(f"--format {output_format!r}: use table, csv or json")
    if cost not in ("macs", "latency"):
        raise typer.BadParameter(f"--cost {cost!r}: use macs or latency")
    rows = load(name, storage)
    objectives = {"accuracy": "max", "macs" if cost == "macs" else "latency_ms": "min"}
    if cost == "latency" and not rows.empty and rows["latency_ms"].isna().all():
        err.print(f"{name}: no step has a measured latency; search with search.objectives=accuracy_latency",
                  highlight=False)
        raise typer.Exit(2)
    front = pareto_front(rows, objectives, feasible_only=not include_infeasible) if not rows.empty else rows
    if max_macs is not None and not front.empty:
        front = front[front["macs"] <= _mac_count(max_macs)]
    if min_accuracy is not None and not front.empty:
        front = front[front["accuracy"] >= min_accuracy]
    table = front_table(front)
    if output_format == "csv":
        sys.stdout.write(table.to_csv(index=False))
    elif output_format == "json":
        sys.stdout.write(table.to_json(orient="records", indent=2) + "\n")
    else:
        _print_table(table, f"{name}: Pareto front, {len(table)} of {len(rows)} steps "
                            f"({rows['trial'].nunique() if not rows.empty else 0} trials)")
    if table.empty:
        err.print("no step meets the filters" if len(rows) else "no results yet", highlight=False)
        raise typer.Exit(1)


@app.command()
@user_facing
def export(
    name: Annotated[str, typer.Argument(help="name of the search (or its folder)")],
    trial: Annotated[int, typer.Option("--trial", help="trial number (as `prunetune pareto` shows)")],
    step: Annotated[int, typer.Option("--step", help="pruning step of that trial")],
    output: Annotated[Path, typer.Option("-o", "--output", help="file to write, e.g. model.pt")],
    storage: StorageOpt = "runs",
    portable: Annotated[bool, typer.Option("--pt2", help="also write a torch.export program (.pt2) that needs torch only")] = False,
) -> None:
    """Write one (trial, step) as a standalone pruned model with its config and metrics."""
    from prunetune.results import export_model

    exported = export_model(name, trial, step, output, storage, portable=portable)
    metrics = exported.metrics
    out.print(f"wrote {exported.path}: trial {trial} step {step}, accuracy {metrics['accuracy']:.4f}, "
              f"MACs {metrics['macs']:,} ({metrics['mac_ratio']:.3f} of the baseline)", highlight=False)
    if exported.program:
        out.print(f"wrote {exported.program} (torch.export.load(path).module(), no other package needed)",
                  highlight=False)
    out.print("load with: torch.load(path, weights_only=False)['model']  (trusted files only: it unpickles)",
              highlight=False, markup=False)


@app.command("report")
@user_facing
def report_command(
    name: Annotated[str, typer.Argument(help="name of the search (or its folder)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for the PNGs and index.html")],
    storage: StorageOpt = "runs",
) -> None:
    """Plots of a search (accuracy vs MACs with the front, accuracy vs sparsity, importance) and an HTML page."""
    from prunetune.results import front_table, load, pareto_front, write_report
    from prunetune.results.experiment import open_search, open_search_study

    saved = open_search(name, storage)
    rows = load(name, storage)
    front = front_table(pareto_front(rows)) if not rows.empty else None
    report = write_report(rows, output, saved.name, open_search_study(saved), front)
    for image in report.images:
        out.print(f"wrote {image}", highlight=False)
    for note in report.notes:
        out.print(f"note: {note}", highlight=False)
    out.print(f"open {report.page}", highlight=False)


@app.command("config")
@user_facing
def show_config(config: ConfigArg, overrides: OverridesArg = None) -> None:
    """Validate a config (search space included) and print it resolved, every default filled in."""
    from prunetune.spaces import load_search

    job, _ = load_search(config, overrides or [])
    out.print(yaml.safe_dump(job.to_dict(), sort_keys=False), end="", highlight=False, markup=False)


@app.command()
@user_facing
def reference() -> None:
    """Print the config reference (every field, type, default and meaning) as Markdown."""
    from prunetune.reference import reference_markdown

    out.print(reference_markdown(), end="", highlight=False, markup=False, soft_wrap=True)


@app.command("list")
@user_facing
def list_names(
    what: Annotated[str | None, typer.Argument(help="a kind of plugin (default: every kind)")] = None,
) -> None:
    """List what each registry holds: datasets, models, criteria, schedules, repairs, objectives, samplers, ..."""
    from prunetune.errors import UserError
    from prunetune.registry import LISTED

    if what is not None and what not in LISTED:
        raise UserError(f"list: unknown kind {what!r}; known: {', '.join(LISTED)}")
    for kind, names in LISTED.items():
        if what in (None, kind):
            out.print(f"{kind}:", highlight=False, markup=False)
            width = max(map(len, names.names()), default=0)
            for name in names:
                out.print(f"  {name:<{width}}  {names.describe(name)}".rstrip(), highlight=False, markup=False)
    if what in (None, "models"):
        import torchvision

        out.print("  torchvision: " + ", ".join(torchvision.models.list_models(module=torchvision.models)),
                  highlight=False, markup=False)
        out.print("  timm: any name from timm.list_models(), e.g. resnet18, efficientnet_b0 (prefix 'timm:' to choose)",
                  highlight=False, markup=False)


def main() -> None:
    app(prog_name="prunetune")


if __name__ == "__main__":
    sys.exit(main())
