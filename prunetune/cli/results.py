"""Commands on a search's results: pareto, export, report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from prunetune.cli.app import StorageOpt, app, err, out, print_table, user_facing


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
        print_table(table, f"{name}: Pareto front, {len(table)} of {len(rows)} steps "
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
    report = write_report(rows, output, saved.name, open_search_study(saved), front, search=saved)
    for image in report.images + (report.scope.files if report.scope else []):
        out.print(f"wrote {image}", highlight=False)
    for note in report.notes + ([report.scope.note] if report.scope and report.scope.note else []):
        out.print(f"note: {note}", highlight=False)
    out.print(f"open {report.page}", highlight=False)


