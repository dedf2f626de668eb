"""Open a search's results by name: the store, rebuilt from Ray's folders when it is missing."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from pathlib import Path

import pandas as pd
from pyarrow import fs as pafs

from prunetune.errors import UserError
from prunetune.home import CHECKPOINT_MODEL, STORE_NAME, SearchHome, is_uri, open_home
from prunetune.objectives import OBJECTIVES
from prunetune.results.store import DamagedStoreError, Store, journal_path, read_store, rows_from_experiment, set_aside
from prunetune.study import open_study, reported_steps, study_storage, trial_numbers


def open_search(experiment: str | Path, storage: str | None = None) -> SearchHome:
    """A search by the path of its home folder, or by name under ``storage`` (default: ``./runs``,
    then the index of searches: ``home.locate``)."""
    path = Path(experiment)
    if (path / "search.json").is_file():
        return open_home(path.resolve().name, str(path.resolve().parent))
    return open_home(str(experiment), storage)


def open_search_study(saved: SearchHome):
    return open_study(study_storage(saved.job.storage.study_url, saved.home), saved.name,
                      OBJECTIVES.get(saved.job.search.objectives))


def rebuild(saved: SearchHome) -> pd.DataFrame:
    """Rewrite ``results.parquet`` from its journal and Ray's trial folders; warn about what is lost."""
    journal = journal_path(saved.home / STORE_NAME)
    experiment = Path(saved.experiment)
    ray_folders = not is_uri(saved.storage) and experiment.is_dir()
    if not journal.is_file() and not ray_folders:
        where = f"the experiment is at {saved.experiment}: copy it to a local folder" if is_uri(saved.storage) else \
            f"nor Ray's experiment folder {saved.experiment} exists"
        raise UserError(f"{saved.name}: neither {saved.home / STORE_NAME} nor {journal.name} {where}")
    study = open_search_study(saved)
    numbers = trial_numbers(study)
    store = Store(saved.home / STORE_NAME)  # the journal's rows: every row the driver received
    if ray_folders:
        store.merge(rows_from_experiment(experiment, saved.name, saved.job, saved.space, numbers.get))
    store.write()
    frame = store.frame()
    _warn_lost(saved, frame, reported_steps(study))
    return frame


def _warn_lost(saved: SearchHome, frame: pd.DataFrame, reported: dict[int, int]) -> None:
    found = frame.groupby("trial")["step"].nunique().to_dict() if not frame.empty else {}
    short = {number: (int(found.get(number, 0)), count) for number, count in reported.items()
             if found.get(number, 0) < count}
    message = (f"rebuilt {saved.home / STORE_NAME} from {journal_path(saved.home / STORE_NAME).name} and Ray's "
               f"trial folders: {len(frame)} rows")
    if short:
        lost = ", ".join(f"trial {number}: {have} of {count}" for number, (have, count) in sorted(short.items()))
        message += f", fewer steps than the study recorded ({lost}): those steps are lost"
    warnings.warn(message, stacklevel=3)


def load(experiment: str | Path, storage: str | None = None) -> pd.DataFrame:
    """Every (trial, step) row of a search: its name (under ``storage``, as ``open_search`` finds it),
    its home folder, or a .parquet file.

    A search's damaged store is set aside and rebuilt; a bare .parquet file has no journal
    home to rebuild from, so its damage is a ``UserError``.
    """
    path = Path(experiment)
    if path.suffix == ".parquet":
        if not path.is_file():
            raise UserError(f"results file not found: {path}")
        return read_store(path)
    saved = open_search(experiment, storage)
    store = saved.home / STORE_NAME
    if store.is_file():
        try:
            return read_store(store)
        except DamagedStoreError as damaged:
            set_aside(damaged)
    return rebuild(saved)


def find_row(df: pd.DataFrame, trial: int, step: int) -> pd.Series:
    rows = df[(df["trial"] == trial) & (df["step"] == step)]
    if rows.empty:
        steps = sorted(df.loc[df["trial"] == trial, "step"].astype(int).tolist())
        known = f"trial {trial} has steps {steps}" if steps else \
            f"trials with rows: {sorted(df['trial'].dropna().astype(int).unique().tolist())}"
        raise UserError(f"no row for trial {trial} step {step}; {known}")
    return rows.iloc[-1]


def fetch_model(checkpoint: str, into: Path) -> Path:
    """The step's model file, copied out of remote storage when the checkpoint is a URI."""
    if not is_uri(checkpoint):
        return Path(checkpoint) / CHECKPOINT_MODEL
    filesystem, path = pafs.FileSystem.from_uri(checkpoint)
    target = into / CHECKPOINT_MODEL
    with filesystem.open_input_stream(f"{path}/{CHECKPOINT_MODEL}") as source, target.open("wb") as sink:
        shutil.copyfileobj(source, sink)
    return target


def resolved_config(saved: SearchHome, row: pd.Series):
    return saved.space.apply(saved.job, json.loads(row["settings"]))


def temporary_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="prunetune-export-")
