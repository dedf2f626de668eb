"""Open a search's results by name: the store, rebuilt from Ray's folders when it is missing."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pandas as pd
from pyarrow import fs as pafs

from prunetune.errors import UserError
from prunetune.home import CHECKPOINT_MODEL, STORE_NAME, SearchHome, is_uri, open_home
from prunetune.objectives import OBJECTIVES
from prunetune.results.store import Store, read_store, rows_from_experiment
from prunetune.study import open_study, study_storage, trial_numbers


def open_search(experiment: str | Path, root: str = "runs") -> SearchHome:
    """A search by name under ``root``, or by the path of its home folder."""
    path = Path(experiment)
    if (path / "search.json").is_file():
        return open_home(path.resolve().name, str(path.resolve().parent))
    return open_home(str(experiment), root)


def open_search_study(saved: SearchHome):
    return open_study(study_storage(saved.job.storage.study_url, saved.home), saved.name,
                      OBJECTIVES.get(saved.job.search.objectives))


def rebuild(saved: SearchHome) -> pd.DataFrame:
    """Rewrite ``results.parquet`` from Ray's trial folders (``result.json`` / ``params.json``)."""
    if is_uri(saved.root):
        raise UserError(f"{saved.name}: the results store is missing and the experiment is at {saved.experiment}; "
                        "rebuilding reads local trial folders: copy the experiment to a local folder first")
    if not Path(saved.experiment).is_dir():
        raise UserError(f"{saved.name}: neither {saved.home / STORE_NAME} nor Ray's experiment folder "
                        f"{saved.experiment} exists")
    numbers = trial_numbers(open_search_study(saved))
    store = Store(saved.home / STORE_NAME)  # a journal's rows, when only the journal survived
    store.merge(rows_from_experiment(Path(saved.experiment), saved.name, saved.job, saved.space, numbers.get))
    store.write()
    return store.frame()


def load(experiment: str | Path, root: str = "runs") -> pd.DataFrame:
    """Every (trial, step) row of a search: a name under ``root``, its home folder, or a .parquet file."""
    path = Path(experiment)
    if path.suffix == ".parquet":
        if not path.is_file():
            raise UserError(f"results file not found: {path}")
        return read_store(path)
    saved = open_search(experiment, root)
    store = saved.home / STORE_NAME
    return read_store(store) if store.is_file() else rebuild(saved)


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
