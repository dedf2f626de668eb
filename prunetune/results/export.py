"""Write a chosen (trial, step) of a search as a standalone pruned-model file.

Only a model inside the search's own experiment folder is loaded (``refuse_foreign_checkpoint``).
The file is ``save_pruned``'s format (the whole module, loadable with ``torch.load(...,
weights_only=False)`` and no prunetune pruning code) with metadata: the experiment, trial,
step, the step's metrics and the trial's resolved config (and a TKP step's masks,
``pruning/kernel_topk.py``). ``portable=True`` also writes a
``torch.export`` program next to it (``.pt2``, dynamic batch size) that loads with
``torch.export.load(path).module()`` and nothing but torch, whatever package defined the
model's classes (TorchScript is deprecated in torch 2.11, so it is not used).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from prunetune.errors import UserError
from prunetune.home import is_uri
from prunetune.io import write_atomic
from prunetune.pruning.kernel_topk import carried_metadata
from prunetune.pruning.persist import load_pruned, save_pruned
from prunetune.results.experiment import fetch_model, find_row, load, open_search, resolved_config, temporary_folder


@dataclass(frozen=True)
class Exported:
    path: Path
    program: Path | None
    metrics: dict


def step_metrics(row: pd.Series) -> dict:
    """The row without its config / param columns, as plain Python values."""
    return {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()
            if not key.startswith(("config.", "param.")) and key != "settings"}


def export_model(experiment: str | Path, trial: int, step: int, out: str | Path, root: str = "runs",
                 portable: bool = False) -> Exported:
    saved = open_search(experiment, root)
    rows = load(experiment, root)
    row = find_row(rows, trial, step)
    if not row["checkpoint"]:
        kept = rows[(rows["trial"] == trial) & (rows["checkpoint"] != "")]["step"].astype(int).tolist()
        why = "it is below the accuracy threshold" if not row["feasible"] else \
            "the search kept only best steps (storage.step_models: best)"
        raise UserError(f"trial {trial} step {step} has no saved model: {why}; steps of trial {trial} with a "
                        f"model: {kept or 'none'}")
    config = resolved_config(saved, row)
    metrics = step_metrics(row)
    out = Path(out)
    refuse_unwritable(out, portable)
    refuse_foreign_checkpoint(row["checkpoint"], saved.experiment, f"trial {trial} step {step}")
    with temporary_folder() as folder:
        source = fetch_model(row["checkpoint"], Path(folder))
        if not source.is_file():
            raise UserError(f"trial {trial} step {step}: its model file {source} is missing")
        if not is_uri(row["checkpoint"]):
            refuse_foreign_checkpoint(str(source), saved.experiment, f"trial {trial} step {step}")  # a symlink out
        pruned = load_pruned(source)
        model = pruned.model
    metadata = {"experiment": saved.name, "trial": int(trial), "step": int(step), "metrics": metrics,
                "config": config.to_dict(), **carried_metadata(pruned.metadata)}  # TKP: masks, effective MACs
    try:
        save_pruned(model, out, metadata)
    except OSError as error:  # checked writable above; the disk can still fill up or go away
        raise UserError(f"cannot export to {out}: {error.strerror or error}") from None
    program = out.with_suffix(".pt2") if portable else None
    if program is not None:
        write_program(model, config.data.channels, config.data.image_size, metadata, program)
    return Exported(out, program, metrics)


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
    extra = {"metadata.json": json.dumps(metadata, default=str)}
    write_atomic(path, lambda target: torch.export.save(program, target, extra_files=extra))
