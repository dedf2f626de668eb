"""``prunetune graph``: draw a job's dependency graph, its pruning groups and its scope."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from prunetune.cli.app import ConfigArg, OverridesArg, app, out, user_facing

VIEW_CHOICES = ("computational", "dependency", "combined", "all")
OutputOpt = Annotated[Path | None, typer.Option("-o", "--output", help="folder for the drawings "
                                                "(default: STORAGE/graphs/NAME)")]
DetailOpt = Annotated[str, typer.Option("--detail", help="auto, full (every op), layers (norms and activations "
                                        "inside their layer) or blocks (one box per block)")]


@app.command("graph")
@user_facing
def graph_command(
    config: ConfigArg,
    overrides: OverridesArg = None,
    output: OutputOpt = None,
    view: Annotated[str, typer.Option("--view", help="computational, dependency, combined or all")] = "all",
    output_format: Annotated[str, typer.Option("--format", help="png, svg or pdf")] = "png",
    detail: DetailOpt = "auto",
) -> None:
    """Draw the model's computational and dependency graph with its pruning groups: which layers this job's
    scope prunes, coupled with what, how many channels each, and what the schedule's steps remove."""
    from prunetune.errors import UserError
    from prunetune.pruning.drawing import (
        DETAILS,
        FORMATS,
        VIEWS,
        draw_job,
        searched_fields,
    )
    from prunetune.spaces import load_search

    problems = [f"--{name} {value!r}: use {', '.join(allowed)}" for name, value, allowed in (
        ("view", view, VIEW_CHOICES), ("format", output_format, FORMATS), ("detail", detail, DETAILS))
        if value not in allowed]
    if problems:
        raise UserError("; ".join(problems))
    job, space = load_search(config, overrides or [])
    directory = output if output is not None else Path(job.storage.root) / "graphs" / job.name
    views = VIEWS if view == "all" else (view,)
    drawing = draw_job(job, directory, views, output_format, detail, searched_fields(space))
    graph = drawing.graph
    out.print(f"graph: {graph.title}", highlight=False)
    out.print(groups_table(graph))
    for note in graph.notes:
        out.print(f"note: {note}", highlight=False)
    for path in drawing.images or drawing.sources:
        out.print(f"wrote {path}", highlight=False)
    if not drawing.rendered:
        out.print(drawing.how_to_render(output_format), highlight=False)


def groups_table(graph) -> Table:
    """One row per group: what the drawing's boxes say, for the terminal."""
    from prunetune.pruning.drawing.dot import status_line, steps_line

    table = Table(title="pruning groups (G<n> in the drawing)")
    for column in ("group", "first layer", "channels", "scope", "schedule"):
        table.add_column(column, justify="right" if column == "channels" else "left")
    for group in graph.groups:
        table.add_row(f"G{group.index}", group.name, str(group.channels), status_line(group),
                      steps_line(graph.targets, group.removal) or "")
    return table
