"""The index of search homes: which storage root each search name lives under, so a name finds its search.

A search started with ``--storage /elsewhere`` has its home at ``/elsewhere/NAME``; the
commands that take a name (status, resume, pareto, report, export) look under ``--storage``
when given, else under ``./runs``, else here (``home.locate``). The index is one JSON file in
the user's data folder, ``$XDG_DATA_HOME/prunetune/searches.json`` (``~/.local/share/...``
when ``XDG_DATA_HOME`` is unset, empty or relative, as the XDG spec says), holding one entry
per home: the search's name, its storage root (absolute, or a URI) and its home folder
(absolute). A driver records its search when it starts it and again when it resumes it (a
home resumed from where it was moved to replaces the old entry).

Several drivers can start at once: a writer holds an exclusive ``flock`` on
``searches.json.lock`` while it reads, changes and renames a new file into place; readers
take no lock (a rename is atomic: they see the old file or the new). An entry whose home no
longer holds ``search.json`` is stale (moved or deleted): lookups say so instead of failing
on it, and the entry stays until a search with that home is recorded again. A damaged
index is set aside (``searches.json.damaged-<time>``) with a warning when next written; an
index that cannot be written costs a warning, never the search.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from prunetune.io import write_atomic

INDEX_FORMAT = 1


def index_path() -> Path:
    """``$XDG_DATA_HOME/prunetune/searches.json``, else ``~/.local/share/prunetune/searches.json``."""
    data_home = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data_home) if data_home and Path(data_home).is_absolute() else Path.home() / ".local" / "share"
    return base / "prunetune" / "searches.json"


@dataclass(frozen=True)
class IndexedSearch:
    name: str
    storage: str
    home: Path

    @property
    def present(self) -> bool:
        """The home still holds a search (False: moved or deleted since it was recorded)."""
        return (self.home / "search.json").is_file()


def indexed(name: str) -> list[IndexedSearch]:
    """The recorded homes of searches named ``name``, oldest first."""
    return [IndexedSearch(entry["name"], entry["storage"], Path(entry["home"]))
            for entry in _read(index_path(), quiet=False) if entry["name"] == name]


def remember(name: str, storage: str, home: Path) -> None:
    """Record that the search ``name`` of ``storage`` lives in ``home`` (replacing that home's old entry)."""
    path = index_path()
    entry = {"name": name, "storage": storage, "home": str(Path(home).resolve()), "recorded": time.time()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with (path.parent / f"{path.name}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            entries = [e for e in _read(path, quiet=True) if e["home"] != entry["home"]]
            payload = json.dumps({"format": INDEX_FORMAT, "searches": [*entries, entry]}, indent=1)
            write_atomic(path, lambda target: target.write_text(payload))
    except OSError as error:
        warnings.warn(f"cannot record search {name!r} in the index of searches {path} "
                      f"({error.strerror or error}); name its storage with --storage {storage}", stacklevel=2)


def _read(path: Path, quiet: bool) -> list[dict]:
    """The index's entries; a damaged file reads as empty (with a warning; set aside when ``quiet``, a writer)."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as error:
        if quiet:
            raise  # a writer says it cannot record the search
        warnings.warn(f"cannot read the index of searches {path} ({error.strerror or error}); "
                      "searches outside ./runs need --storage", stacklevel=3)
        return []
    try:
        entries = json.loads(content)["searches"]
        if not all(isinstance(e, dict) and {"name", "storage", "home"} <= e.keys() for e in entries):
            raise ValueError("an entry lacks name, storage or home")
        return entries
    except (ValueError, TypeError, KeyError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        reason = f"{type(error).__name__}: {error}" if isinstance(error, KeyError) else str(error)
        if quiet:  # keep the damaged file for the user; the writer starts a new one
            aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(path, aside)
            warnings.warn(f"the index of searches {path} was damaged ({reason}); set aside as {aside.name}, "
                          "a new one started", stacklevel=3)
        else:
            warnings.warn(f"the index of searches {path} is damaged ({reason}); searches outside ./runs need "
                          "--storage until one is started or resumed", stacklevel=3)
        return []
