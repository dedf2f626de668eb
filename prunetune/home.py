"""Where a search lives: its home folder (search.json, space.pkl, study, results) and Ray's experiment.

With a local ``storage.root`` the home is ``<root>/<NAME>``, which is also Ray's
experiment folder; with a URI root (``s3://...``) Ray writes there and the home stays
local under ``.prunetune/searches/<NAME>``.

Both the search (which writes these files) and ``results/`` (which reads them) import
this module, so it imports neither of them, nor torch, Ray or Optuna.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

from pyarrow import fs as pafs

from prunetune.config import JobConfig
from prunetune.errors import UserError

STORE_NAME = "results.parquet"  # the results store in the home folder (results/store.py)
CHECKPOINT_MODEL = "model.pt"  # the pruned model inside each kept step's checkpoint folder


def is_uri(root: str) -> bool:
    return "://" in root


def absolute_root(root: str) -> str:
    return root if is_uri(root) else str(Path(root).resolve())


def search_home(root: str, name: str) -> Path:
    return Path(".prunetune/searches", name) if is_uri(root) else Path(root).resolve() / name


def experiment_path(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if is_uri(root) else str(Path(root).resolve() / name)


def experiment_exists(root: str, name: str) -> bool:
    filesystem, path = pafs.FileSystem.from_uri(experiment_path(root, name)) if is_uri(root) else (
        pafs.LocalFileSystem(), experiment_path(root, name))
    return filesystem.get_file_info(path).type != pafs.FileType.NotFound


@dataclass(frozen=True)
class SearchHome:
    name: str
    root: str
    home: Path
    job: JobConfig
    space: object
    meta: dict

    @property
    def experiment(self) -> str:
        return experiment_path(self.root, self.name)


def open_home(name: str, root: str = "runs") -> SearchHome:
    """The saved job, space and metadata of the search ``name`` under ``root``."""
    root = absolute_root(root)
    home = search_home(root, name)
    if not (home / "search.json").exists():
        raise UserError(f"no search named {name!r} under {root} (looked for {home / 'search.json'})")
    meta = json.loads((home / "search.json").read_text())
    return SearchHome(name, root, home, JobConfig.from_dict(meta["job"]),
                      pickle.loads((home / "space.pkl").read_bytes()), meta)
