"""The function every Ray Tune trial runs: one pipeline run, one ``tune.report`` per step.

The baseline is never trained here. The driver trains or loads it once and passes its
files and folder through the object store (``tune.with_parameters``); a trial uses the
driver's baseline folder when it can see it (same machine or a shared filesystem) and
otherwise writes the files into this user's node-local cache first (``private_cache``).
Either way the trial prunes exactly the driver's baseline, never one it keys itself: a
checkpoint overwritten mid-search (or a key computed by another prunetune version, on
resume) cannot give trials different baselines.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ray import tune

from prunetune.config import JobConfig
from prunetune.errors import RunError
from prunetune.home import CHECKPOINT_MODEL
from prunetune.internals import quiet_checkpoint_log
from prunetune.io import write_atomic
from prunetune.objectives import OBJECTIVES
from prunetune.pipeline import run
from prunetune.search.scalars import EPOCHS_KEY


def baseline_files(directory: Path) -> dict[str, bytes]:
    """The files of a baseline folder ({} when it is gone)."""
    if not directory.is_dir():
        return {}
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}


def private_cache() -> Path:
    """This user's node-local baseline cache: ``prunetune-baselines-<uid>`` in the temp dir, mode 0o700.

    The temp dir is shared by every user of the node: a folder someone else made (or can
    write) could hold a planted baseline, which the trial would load as its own.
    """
    folder = Path(tempfile.gettempdir()) / f"prunetune-baselines-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    info = folder.lstat()
    if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise RunError(f"{folder}: the baseline cache is not a folder only this user can write "
                       f"(owner uid {info.st_uid}, mode {oct(info.st_mode & 0o777)}); remove it")
    return folder


def local_baseline(files: dict[str, bytes], folder: str) -> Path | None:
    """The driver's baseline (``files``, saved in ``folder``) as a folder on this node.

    ``folder`` itself when this node sees it holding the same record, else a copy in the
    private cache. None when the driver had no files (its folder was gone on resume): the
    trial then prepares the baseline its config keys.
    """
    if not files:
        return None
    shared = Path(folder)
    record = shared / "baseline.json"
    if record.is_file() and record.read_bytes() == files.get("baseline.json"):
        return shared
    target = private_cache() / shared.name
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, content in files.items():
        # What is there is used only when it is byte for byte the driver's baseline.
        path = target / name
        if not path.is_file() or path.is_symlink() or path.read_bytes() != content:
            path.unlink(missing_ok=True)
            write_atomic(path, lambda out, data=content: Path(out).write_bytes(data))
    return target


def scratch_folder(base: Path | None = None) -> tempfile.TemporaryDirectory:
    """A trial's scratch folder, named after its worker process.

    A worker killed mid-trial (Ray's out-of-memory killer, a killed search) never removes
    its folder, which may hold step models: those of dead processes are removed here first.
    """
    base = base or Path(tempfile.gettempdir()) / "prunetune-trials"
    base.mkdir(parents=True, exist_ok=True)
    for folder in base.iterdir():
        owner = folder.name.split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(folder, ignore_errors=True)
    return tempfile.TemporaryDirectory(prefix=f"{os.getpid()}-", dir=base)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def trial(params: dict, *, job: dict, space, baseline: dict[str, bytes], baseline_folder: str = "") -> None:
    """One pipeline run; a step's model goes out as a Ray checkpoint (``model.pt``) when kept.

    ``storage.step_models``: "feasible" checkpoints every feasible step, so any point of
    the front can be exported; "best" only the trial's new best steps.
    """
    quiet_checkpoint_log()  # the driver's progress line already says a step was kept
    config = space.apply(JobConfig.from_dict(job), params)
    baseline_directory = local_baseline(baseline, baseline_folder)
    every_step = config.storage.step_models == "feasible"
    objective = OBJECTIVES.get(config.search.objectives)
    # The pipeline's folder is scratch on the worker: everything that must last leaves
    # through Ray (each result -> the results store, each kept model -> a checkpoint),
    # which works on any node and storage. Ray's trial folder is no place for it: a
    # worker reused for a later trial (reuse_actors) still reports the first trial's.
    with scratch_folder() as scratch:
        directory = Path(scratch)
        epochs: list[dict] = []  # the epochs since the last step leave with its report (TensorBoard's curves)
        earlier: list[dict] = []  # the trial's rows so far: an objective over the whole curve reads them

        def report(row: dict) -> None:
            metrics = {**row, **objective.values(row, earlier), EPOCHS_KEY: list(epochs)}
            epochs.clear()
            earlier.append(row)
            kept = "step.pt" if every_step and row["feasible"] else "best.pt" if row["is_best"] else None
            if kept is None:
                tune.report(metrics)
                return
            with tempfile.TemporaryDirectory(dir=directory) as staging:  # inside: a dead worker's goes too
                shutil.copy2(directory / kept, Path(staging) / CHECKPOINT_MODEL)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(staging))

        # No Ray stopper: the pipeline ends its own cuts below the threshold, and the final
        # fine-tuning (recovery.final_epochs) still follows that infeasible row.
        run(config, report=report, directory=directory, on_epoch=epochs.append, save_steps=every_step,
            objective=objective, baseline_directory=baseline_directory)
