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
    storage: StorageOpt = None,
    max_macs: Annotated[str | None, typer.Option("--max-macs", help="only points with at most these MACs (350M, 1.2G)")] = None,
    min_accuracy: Annotated[float | None, typer.Option("--min-accuracy", help="only points at least this accurate")] = None,
    output_format: Annotated[str, typer.Option("--format", help="table (for people), or csv or json (raw numbers: "
                                                                 "accuracy, macs, mac_ratio, params, latency_ms, and "
                                                                 "each searched setting by its dotted name)")] = "table",
    include_infeasible: Annotated[bool, typer.Option("--include-infeasible", help="also steps below the threshold")] = False,
    cost: Annotated[str, typer.Option("--cost", help="macs, or latency (searches with objectives accuracy_latency)")] = "macs",
) -> None:
    """The Pareto front of accuracy against MACs (or latency) over every trial's every pruning step."""
    from prunetune.results import front_table, load, pareto_front
    from prunetune.results.tables import front_records, records_json

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
    if output_format == "csv":
        sys.stdout.write(front_records(front).to_csv(index=False))
    elif output_format == "json":
        sys.stdout.write(records_json(front_records(front)) + "\n")
    else:
        print_table(front_table(front), f"{name}: Pareto front, {len(front)} of {len(rows)} steps "
                                        f"({rows['trial'].nunique() if not rows.empty else 0} trials)")
    if front.empty:
        err.print("no step meets the filters" if len(rows) else "no results yet", highlight=False)
        raise typer.Exit(1)


@app.command()
@user_facing
def export(
    source: Annotated[str, typer.Argument(help="a search's name (or home folder), or a `prunetune run` directory")],
    output: Annotated[Path, typer.Option("-o", "--output", help="file to write, e.g. model.pt")],
    trial: Annotated[int | None, typer.Option("--trial", help="a search's trial (as `prunetune pareto` shows)")] = None,
    step: Annotated[int | None, typer.Option("--step", help="pruning step: of that trial, or of the run (default: "
                                                             "the run's best feasible step; a run keeps its best "
                                                             "and its last step)")] = None,
    storage: StorageOpt = None,
    portable: Annotated[bool, typer.Option("--pt2", help="also write a torch.export program (.pt2) that needs torch only")] = False,
) -> None:
    """Write one step (a search's trial and step, or a run's best or last step) as a standalone pruned model
    with what a deployer needs: class names, input shape, preprocessing, metrics and config."""
    from prunetune.errors import UserError
    from prunetune.results.export import export_model, export_run, is_run_directory

    if is_run_directory(source) and not (Path(source) / "search.json").exists():
        if trial is not None or storage is not None:
            raise UserError(f"{source} is a `prunetune run` directory (one run, no trials): drop "
                            f"{'--trial' if trial is not None else '--storage'}")
        exported = export_run(source, output, step, portable=portable)
        origin = f"step {exported.metadata['step']} ({exported.metadata['kept_as']}) of run {source}"
    else:
        if trial is None or step is None:
            raise UserError(f"export {source}: a search's model is chosen by --trial and --step "
                            f"(`prunetune pareto {source}` lists them)")
        exported = export_model(source, trial, step, output, storage, portable=portable)
        origin = f"trial {trial} step {step}"
    metrics, metadata = exported.metrics, exported.metadata
    out.print(f"wrote {exported.path}: {origin}, accuracy {metrics['accuracy']:.4f}, MACs {metrics['macs']:,} "
              f"({metrics['mac_ratio']:.1%} of the baseline)", highlight=False, markup=False)
    if exported.program:
        out.print(f"wrote {exported.program} (torch.export.load(path).module(), no other package needed)",
                  highlight=False, markup=False)
    shape = " x ".join(str(size) for size in metadata["input"]["shape"])
    out.print(f"metadata: {len(metadata['class_names'])} class names, input {shape} ({metadata['input']['color']}), "
              f"preprocessing {' > '.join(step['op'] for step in metadata['preprocessing'])}, metrics, config",
              highlight=False, markup=False)
    out.print("load with: torch.load(path, weights_only=False) -> {'model', 'metadata'} (trusted files only: it "
              "unpickles)" + ("; the .pt2's metadata: files = {'metadata.json': ''}; "
                              "torch.export.load(path, extra_files=files)" if exported.program else ""),
              highlight=False, markup=False)


@app.command("report")
@user_facing
def report_command(
    name: Annotated[str, typer.Argument(help="name of the search (or its folder)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="folder for the PNGs and index.html")],
    storage: StorageOpt = None,
) -> None:
    """Plots of a search (accuracy vs MACs with the front, accuracy vs sparsity, importance) and an HTML page."""
    from prunetune.registry import OBJECTIVES
    from prunetune.results import front_table, load, pareto_front, write_report
    from prunetune.results.experiment import open_search, open_search_study

    saved = open_search(name, storage)
    rows = load(name, storage)
    front = front_table(pareto_front(rows)) if not rows.empty else None
    report = write_report(rows, output, saved.name, open_search_study(saved), front,
                          OBJECTIVES.get(saved.job.search.objectives), search=saved)
    for image in report.images + (report.scope.files if report.scope else []):
        out.print(f"wrote {image}", highlight=False)
    for note in report.notes + ([report.scope.note] if report.scope and report.scope.note else []):
        out.print(f"note: {note}", highlight=False)
    out.print(f"open {report.page}", highlight=False)


