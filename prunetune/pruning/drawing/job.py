"""A job's drawing: its model at its input size, its scope, its schedule's first and last step.

The weights are the trained baseline's when one exists for the job (``runs/baselines/``),
else ``model.checkpoint``'s, else the untrained model's: they only change which channels
the criterion ranks lowest, never the groups or their channel counts.
"""

from __future__ import annotations

from pathlib import Path

import torch

from prunetune.baseline import baseline_dir, trained_baseline
from prunetune.config import JobConfig
from prunetune.data import build_splits
from prunetune.models import build_model
from prunetune.pruning.drawing.compact import (
    block_of_nodes,
    find_blocks,
    recording_blocks,
    simplify,
)
from prunetune.pruning.drawing.dot import VIEWS
from prunetune.pruning.drawing.graph import DrawnGraph, read_graph
from prunetune.pruning.drawing.groups import scope_groups, step_counts
from prunetune.pruning.drawing.render import Drawing, file_stem, write_views
from prunetune.pruning.scope import build_graph
from prunetune.runtime import seed_everything


def searched_fields(space) -> tuple[str, ...]:
    """The pruning fields a search space varies (a drawing shows the config's own values)."""
    return tuple(p.name for p in space.parameters if p.name.startswith("pruning."))


def job_model(job: JobConfig) -> tuple[torch.nn.Module, str]:
    """The job's model and where its weights come from."""
    record = trained_baseline(job)
    if record is not None:
        model = build_model(job.model, record.num_classes, record.channels)
        model.load_state_dict(torch.load(baseline_dir(job) / "model.pt", map_location="cpu", weights_only=True))
        return model.eval(), "the trained baseline"
    seed_everything(job.seed)  # the untrained weights, and so the ranking, are the same at every call
    # The class count only sizes the classifier; the dataset is read for it when the config does not say.
    classes = job.model.num_classes or build_splits(job.data, job.seed).num_classes
    model = build_model(job.model, classes, job.data.channels)
    return model.eval(), "model.checkpoint" if job.model.checkpoint else "untrained weights (no baseline yet)"


def _scope_text(pruning) -> str:
    patterns = [f"{kind} {', '.join(values)}" for kind, values in
                (("include", pruning.include), ("exclude", pruning.exclude)) if values]
    return ", ".join([f"scope {pruning.scope}", *patterns])


def _targets_text(targets: list[float]) -> str:
    shown = ", ".join(f"{t:.2f}" for t in targets) if len(targets) <= 4 else f"{targets[0]:.2f} .. {targets[-1]:.2f}"
    return f"{len(targets)} step{'s' if len(targets) > 1 else ''}: {shown}"


def describe_job(job: JobConfig, detail: str = "auto", searched: tuple[str, ...] = ()) -> tuple[DrawnGraph, str]:
    """The job's graph at ``detail`` (``compact.DETAILS``), and the detail level drawn.

    ``searched`` names the config fields a search varies: the drawing is of the job's own values.
    """
    model, weights = job_model(job)
    example = torch.zeros(1, job.data.channels, job.data.image_size, job.data.image_size)
    blocks = find_blocks(model)
    with recording_blocks(model, blocks) as computed_by:
        graph = build_graph(model, example)
    pruning = job.pruning
    groups = scope_groups(model, graph, pruning.scope, pruning.include, pruning.exclude)
    chosen = [drawn for _, drawn in groups if drawn.selected]
    notes = []
    targets: list[float] = []
    if chosen:
        counts = step_counts(model, example, pruning, job.data.channels, job.seed, job.latency, graph)
        targets = counts.targets
        for drawn in chosen:
            drawn.removal = counts.removed.get(drawn.name)
        notes.append(f"schedule {pruning.schedule.kind} ({_targets_text(targets)}); the steps' counts rank channels by "
                     f"{counts.ranking} on {weights}, once, on the dense model")
    total = sum(g.channels for _, g in groups)
    title = (f"{job.model.name} ({'x'.join(map(str, example.shape[1:]))}), {_scope_text(pruning)}: {len(chosen)} of "
             f"{len(groups)} groups, {sum(g.channels for g in chosen)} of {total} channels in scope")
    if searched:
        notes.append(f"a search of this config varies {', '.join(searched)}: drawn with the config's own values")
    drawn_graph = read_graph(model, graph, groups, tuple(example.shape), title, block_of_nodes(graph, computed_by))
    drawn_graph.targets, drawn_graph.notes = targets, notes
    modules = dict(model.named_modules())
    drawn_graph, used = simplify(drawn_graph, detail, blocks, {name: type(modules[name]).__name__ for name in blocks})
    if used == "layers":
        notes.append("detail layers: norms and activations are drawn inside the layer before them (--detail full "
                     "draws every op)")
    elif used == "blocks":
        notes.append("detail blocks: one box per block listing its layers and the group each outputs; a box around "
                     "blocks is a group they share; identical blocks after the first of a run are summed in one box "
                     "(--detail layers / full draw every layer)")
    return drawn_graph, used


def draw_job(job: JobConfig, directory: str | Path, views: tuple[str, ...] = VIEWS, fmt: str = "png",
             detail: str = "auto", searched: tuple[str, ...] = ()) -> Drawing:
    """Write ``<model>_<view>.dot`` per view under ``directory`` and render it as ``fmt`` where
    Graphviz's ``dot`` is installed (``Drawing.how_to_render`` says how otherwise)."""
    graph, used = describe_job(job, detail, searched)
    return write_views(Drawing(graph, used), Path(directory), file_stem(job.model.name), views, fmt)
