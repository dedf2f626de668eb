"""Where a search lives: its home folder (search.json, study, results, driver.json) and Ray's experiment.

With a local ``storage.root`` the home is ``<root>/<NAME>``, which is also Ray's
experiment folder; with a URI root (``s3://...``) Ray writes there and the home stays
local under ``.prunetune/searches/<NAME>``.

A search is found by its name and storage root (``locate``): under ``--storage`` when given,
else under ``./runs``, else through the index of search homes (``search_index.py``), which every
driver updates; ``search_command`` writes the command line that finds it again.

``search.json`` holds the job, whose ``search.space`` is the space as data (the canonical
entries ``load_search`` wrote): ``build_search`` rebuilds the space from it, so reading a
search never unpickles anything. Homes of prunetune before that kept ``space.pkl`` and are
refused (a pickle runs code when loaded).

Both the search (which writes these files) and ``results/`` (which reads them) import
this module, so it imports neither of them, nor torch, Ray or Optuna.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from pyarrow import fs as pafs

from prunetune.config import JobConfig
from prunetune.errors import ConfigError, UserError
from prunetune.io import write_atomic
from prunetune.search_index import index_path, indexed
from prunetune.spaces import build_search

DEFAULT_STORAGE = "runs"  # storage.root's default, relative to the current folder
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
    storage: str  # the storage root, absolute (or a URI)
    home: Path
    job: JobConfig
    space: object
    meta: dict

    @property
    def experiment(self) -> str:
        return experiment_path(self.storage, self.name)


SEARCH_FORMAT = 2  # search.json's "format": 2 keeps the space as data (no space.pkl)


def search_command(verb: str, name: str, storage: str, *rest: str) -> str:
    """``prunetune VERB NAME REST``, shell-quoted, with ``--storage`` unless ``./runs`` is where it lives."""
    words = ["prunetune", verb, name, *rest]
    if absolute_root(storage) != absolute_root(DEFAULT_STORAGE):
        words += ["--storage", storage]
    return shlex.join(words)


def locate(name: str, storage: str | None = None) -> tuple[str, Path]:
    """The storage root and home folder of the search ``name``.

    With ``storage``, the home under it (a URI root's home is local to where the search
    started: the index knows it). Without, ``./runs/NAME`` if it holds a search, else the one
    home the index lists for that name; several are refused, listing their ``--storage``.
    """
    if storage is not None:
        root = absolute_root(storage)
        home = search_home(root, name)
        if (home / "search.json").exists():
            return root, home
        recorded = [entry for entry in indexed(name) if entry.storage == root and entry.present]
        if recorded:
            return root, recorded[-1].home
        raise UserError(f"no search named {name!r} under {root} (looked for {home / 'search.json'})")
    root = absolute_root(DEFAULT_STORAGE)
    home = search_home(root, name)
    if (home / "search.json").exists():
        return root, home
    entries = indexed(name)
    present = [entry for entry in entries if entry.present]
    if len(present) == 1:
        return present[0].storage, present[0].home
    if present:
        where = "; ".join(f"--storage {shlex.quote(entry.storage)} (home {entry.home})" for entry in present)
        raise UserError(f"{len(present)} searches are named {name!r}: {where}; choose one with --storage")
    if entries:
        gone = entries[-1]
        raise UserError(f"no search named {name!r} under {root}; the index of searches ({index_path()}) has it at "
                        f"{gone.home} (--storage {shlex.quote(gone.storage)}), which no longer holds it (moved or "
                        "deleted?): pass --storage with the root it is under now")
    raise UserError(f"no search named {name!r} under {root} (looked for {home / 'search.json'}), and the index of "
                    f"searches ({index_path()}) lists none by that name: pass --storage with the root it was "
                    "started with")


def open_home(name: str, storage: str | None = None) -> SearchHome:
    """The saved job, space and metadata of the search ``name`` (found as ``locate`` says)."""
    root, home = locate(name, storage)
    meta_file = home / "search.json"
    try:
        meta = json.loads(meta_file.read_text())
        job = meta["job"] if isinstance(meta, dict) else None
        if not isinstance(job, dict) or not isinstance(meta.get("num_samples"), int):
            raise ValueError("no job or num_samples")
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"{meta_file} is damaged ({error}); it holds the search's job and space: restore it "
                        "from a backup, or start a new search under another --name") from None
    if meta.get("format") != SEARCH_FORMAT:
        raise UserError(f"{home} was made by an older prunetune (its space is a pickle, space.pkl, which this "
                        "version never loads: loading a pickle runs code); start the search again with this version")
    try:
        config, space = build_search(job)
    except ConfigError as error:
        raise UserError(f"{meta_file}: the saved job no longer validates ({error})") from None
    return SearchHome(name, root, home, config, space, meta)


DRIVER_FILE = "driver.json"  # the running driver's pid, host and heartbeat
BEAT_SECONDS = 10.0  # how often a driver refreshes its heartbeat
GONE_AFTER = 6 * BEAT_SECONDS  # a driver on another host silent this long is taken for gone


@dataclass(frozen=True)
class DriverState:
    pid: int
    host: str
    last_seen: float
    alive: bool

    def describe(self) -> str:
        seen = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.last_seen))
        return f"driver {'running' if self.alive else 'gone'} (pid {self.pid} on {self.host}, last seen {seen})"


def beat(home: Path, ended: bool = False) -> None:
    """Record that this process drives the search in ``home`` (``ended``: it stopped cleanly)."""
    if ended:
        (home / DRIVER_FILE).unlink(missing_ok=True)
        return
    state = {"pid": os.getpid(), "host": socket.gethostname(), "last_seen": time.time()}
    write_atomic(home / DRIVER_FILE, lambda path: path.write_text(json.dumps(state)))


def driver_state(home: Path) -> DriverState | None:
    """The driver that last beat in ``home``; None when none runs (or it stopped cleanly)."""
    try:
        state = json.loads((home / DRIVER_FILE).read_text())
        pid, host, seen = int(state["pid"]), str(state["host"]), float(state["last_seen"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return DriverState(0, "unknown host", 0.0, False)  # a driver killed mid-write leaves no whole file
    if host != socket.gethostname():
        return DriverState(pid, host, seen, time.time() - seen < GONE_AFTER)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return DriverState(pid, host, seen, False)
    except PermissionError:
        pass  # someone else's process has the pid: alive, as far as this user can tell
    return DriverState(pid, host, seen, True)  # a long step can outlast a beat: the pid decides here
