"""Write a chosen step of a search, or of a ``prunetune run``, as a standalone pruned-model file.

A search's step is chosen by trial and step (``export_model``); a run directory keeps the
models of two steps, its best feasible step (``best.pt``) and its last (``last.pt``), and
``export_run`` writes either (the best by default). Only a model inside the search's own
experiment folder, or the run directory named, is loaded (``refuse_foreign_checkpoint``).

The file is ``save_pruned``'s format (the whole module, loadable with ``torch.load(...,
weights_only=False)`` and no prunetune pruning code) with ``metadata`` (``export_metadata``):
where the model comes from, the step's metrics, the resolved config, and what a deployer
needs to feed it (``data/deployment.py``: class names, input shape, preprocessing, output).
``portable=True`` also writes a ``torch.export`` program next to it (``.pt2``, dynamic batch
size) that loads with ``torch.export.load(path).module()`` and nothing but torch, whatever
package defined the model's classes (TorchScript is deprecated in torch 2.11, so it is not
used); the same metadata is its extra file ``metadata.json``::

    files = {"metadata.json": ""}
    program = torch.export.load("model.pt2", extra_files=files)
    metadata = json.loads(files["metadata.json"])
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

import prunetune
from prunetune.config import JobConfig, load_config
from prunetune.data import build_splits
from prunetune.data.deployment import DEPLOYMENT_FILE, deployment_info
from prunetune.errors import UserError
from prunetune.home import is_uri
from prunetune.io import write_atomic
from prunetune.pruning.persist import load_pruned, save_pruned
from prunetune.results.experiment import fetch_model, find_row, load, open_search, resolved_config, temporary_folder

EXPORT_FORMAT = "prunetune.export/1"  # the metadata's layout
PROGRAM_METADATA = "metadata.json"  # the .pt2's extra file holding the metadata
RUN_FILES = ("rows.parquet", "config.yaml")  # what makes a folder a `prunetune run` directory


@dataclass(frozen=True)
class Exported:
    path: Path
    program: Path | None
    metrics: dict
    metadata: dict


def step_metrics(row: pd.Series) -> dict:
    """The row without its config / param columns, as plain Python values."""
    return {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()
            if not key.startswith(("config.", "param.")) and key != "settings"}


def export_metadata(source: dict, metrics: dict, config: JobConfig, deployment: dict | None) -> dict:
    """What both exported files carry: ``source`` (where the model comes from), the deployment
    info (measured on the data now when none was recorded), the metrics and config, versions."""
    if deployment is None:  # made by a prunetune that did not record it
        deployment = deployment_info(build_splits(config.data, config.seed))
    return {"format": EXPORT_FORMAT, **source, **deployment, "metrics": metrics, "config": config.to_dict(),
            "versions": {"prunetune": prunetune.__version__, "torch": torch.__version__},
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def export_model(experiment: str | Path, trial: int, step: int, out: str | Path, storage: str | None = None,
                 portable: bool = False) -> Exported:
    """Write step ``step`` of trial ``trial`` of a search (name under ``storage``, or its home folder)."""
    saved = open_search(experiment, storage)
    rows = load(experiment, storage)
    row = find_row(rows, trial, step)
    if not row["checkpoint"]:
        kept = rows[(rows["trial"] == trial) & (rows["checkpoint"] != "")]["step"].astype(int).tolist()
        why = "it is below the accuracy threshold" if not row["feasible"] else \
            "the search kept only best steps (storage.step_models: best)"
        raise UserError(f"trial {trial} step {step} has no saved model: {why}; steps of trial {trial} with a "
                        f"model: {kept or 'none'}")
    config = resolved_config(saved, row)
    out = Path(out)
    refuse_unwritable(out, portable)
    refuse_foreign_checkpoint(row["checkpoint"], saved.experiment, f"trial {trial} step {step}")
    with temporary_folder() as folder:
        source = fetch_model(row["checkpoint"], Path(folder))
        if not source.is_file():
            raise UserError(f"trial {trial} step {step}: its model file {source} is missing")
        if not is_uri(row["checkpoint"]):
            refuse_foreign_checkpoint(str(source), saved.experiment, f"trial {trial} step {step}")  # a symlink out
        model = load_pruned(source).model
    origin = {"source": "search", "experiment": saved.name, "trial": int(trial), "step": int(step)}
    metadata = export_metadata(origin, step_metrics(row), config, saved.meta.get("deployment"))
    return write_export(model, config, metadata, out, portable)


def export_run(directory: str | Path, out: str | Path, step: int | None = None, portable: bool = False) -> Exported:
    """Write a kept step of a ``prunetune run`` directory: its best feasible step by default."""
    directory = Path(directory)
    rows = run_rows(directory)
    kept = kept_steps(directory, rows)
    step = best_step(directory, rows, kept) if step is None else step
    name = next((file for file, number in kept.items() if number == step), None)
    if name is None:
        listed = ", ".join(f"{file}: step {number}" for file, number in kept.items()) or "neither is there"
        raise UserError(f"{directory}: step {step}'s model was not kept; a run keeps its best feasible step "
                        f"(best.pt) and its last step (last.pt): {listed}")
    out = Path(out)
    refuse_unwritable(out, portable)
    file = directory / name
    refuse_foreign_checkpoint(str(file), str(directory), f"step {step}")  # a symlink out of the run
    pruned = load_pruned(file)
    if pruned.metadata.get("step") != step:  # a run killed between saving best.pt and its rows
        raise UserError(f"{file} holds step {pruned.metadata.get('step')}, not step {step} as "
                        f"{directory / 'rows.parquet'} says; export it with --step {pruned.metadata.get('step')}")
    config = load_config(directory / "config.yaml")
    recorded = directory / DEPLOYMENT_FILE
    deployment = json.loads(recorded.read_text()) if recorded.is_file() else None
    row = rows[rows["step"] == step].iloc[-1]
    origin = {"source": "run", "run": str(directory.resolve()), "trial": None, "step": int(step),
              "kept_as": name.removesuffix(".pt")}
    metadata = export_metadata(origin, step_metrics(row), config, deployment)
    return write_export(pruned.model, config, metadata, out, portable)


def is_run_directory(path: str | Path) -> bool:
    return Path(path).is_dir() and all((Path(path) / name).is_file() for name in RUN_FILES)


def run_rows(directory: Path) -> pd.DataFrame:
    try:
        rows = pd.read_parquet(directory / "rows.parquet")
    except (OSError, ValueError) as error:
        raise UserError(f"{directory / 'rows.parquet'} is not readable ({error})") from None
    if rows.empty:
        raise UserError(f"{directory}: the run recorded no step, so it has no model to export")
    return rows


def kept_steps(directory: Path, rows: pd.DataFrame) -> dict[str, int]:
    """The run's model files and their steps: ``best.pt``, the last row's best feasible step, and
    ``last.pt``, the last row's step (``pipeline/run.py`` keeps no other)."""
    last = rows.iloc[-1]
    kept = {"best.pt": last["best_step"], "last.pt": last["step"]}
    return {file: int(step) for file, step in kept.items() if pd.notna(step) and (directory / file).is_file()}


def best_step(directory: Path, rows: pd.DataFrame, kept: dict[str, int]) -> int:
    best = rows.iloc[-1]["best_step"]
    if pd.isna(best):
        last = int(rows.iloc[-1]["step"])
        raise UserError(f"{directory}: no step of the run stayed above the accuracy threshold, so it has no best "
                        f"model; its last step is kept: export it with --step {last}" if "last.pt" in kept else
                        f"{directory}: no step of the run stayed above the accuracy threshold; no model was kept")
    return int(best)


def write_export(model: torch.nn.Module, config: JobConfig, metadata: dict, out: Path, portable: bool) -> Exported:
    try:
        save_pruned(model, out, metadata)
    except OSError as error:  # checked writable above; the disk can still fill up or go away
        raise UserError(f"cannot export to {out}: {error.strerror or error}") from None
    program = out.with_suffix(".pt2") if portable else None
    if program is not None:
        write_program(model, config.data.channels, config.data.image_size, metadata, program)
    return Exported(out, program, metadata["metrics"], metadata)


def refuse_foreign_checkpoint(checkpoint: str, experiment: str, what: str) -> None:
    """A ``UserError`` unless ``checkpoint`` lies inside the search's own experiment folder.

    Loading a step's model unpickles it (``pruning/persist.py``), which runs code. The path
    comes from the results store, a file anyone who can write the search home can edit:
    only models where Ray put the search's checkpoints are loaded (README "Security and trust").
    """
    if is_uri(checkpoint) or is_uri(experiment):
        inside = ".." not in checkpoint.split("/") and checkpoint.startswith(experiment.rstrip("/") + "/")
    else:
        inside = Path(checkpoint).resolve().is_relative_to(Path(experiment).resolve())
    if not inside:
        raise UserError(f"{what}: its model {checkpoint} is outside the search's experiment folder {experiment}; "
                        "export loads only models the search saved there (a results store edited by hand?)")


def refuse_unwritable(out: Path, portable: bool) -> None:
    """A ``UserError`` naming ``out`` when the export cannot be written there, before any work."""
    if out.is_dir():
        raise UserError(f"cannot export to {out}: it is a folder; name the file to write, e.g. {out / 'model.pt'}")
    if portable and out.with_suffix(".pt2").is_dir():
        raise UserError(f"cannot export to {out}: the program beside it, {out.with_suffix('.pt2')}, is a folder")
    folder = out.parent
    existing = next(parent for parent in (folder, *folder.parents) if parent.exists())
    if not existing.is_dir():
        raise UserError(f"cannot export to {out}: {existing} is a file, not a folder")
    probe = folder / f".{out.name}.{os.getpid()}.probe"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.open("wb").close()
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot export to {out}: {folder} is not writable ({error.strerror or error})") from None


def write_program(model: torch.nn.Module, channels: int, size: int, metadata: dict, path: Path) -> None:
    """A ``torch.export`` program with a dynamic batch size: ``torch.export.load(path).module()``."""
    example = torch.zeros(2, channels, size, size)
    try:
        program = torch.export.export(model.eval(), (example,),
                                      dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=65536)},))
    except Exception as error:  # export fails on data-dependent control flow in some user models
        raise UserError(f"the model was written, but torch.export cannot capture it for {path}: "
                        f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from None
    # Saved to memory first: torch warns about a file name not ending in .pt2 (write_atomic's temporary).
    archive = io.BytesIO()
    torch.export.save(program, archive, extra_files={PROGRAM_METADATA: json.dumps(metadata, default=str)})
    write_atomic(path, lambda target: target.write_bytes(archive.getvalue()))
