"""Small file helpers shared by every layer: atomic writes, content digests."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

RACY_NS = 2 * 10**9  # file times are as coarse as a clock tick (some filesystems: 2 s)


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder and rename over ``path``.

    A reader sees the old file or the new one, never a torn one, and a crash mid-write
    leaves the old file intact.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def file_digest(path: Path, memo: Path | None = None) -> str:
    """SHA-256 of ``path``'s content, hashed once per version of the file.

    ``memo`` (a JSON file, written only where its folder exists) remembers each file's digest
    with its size, mtime, ctime and inode: while all four are unchanged the file is not read
    again. Any write changes the ctime (which no user tool can set back), so a rewritten file
    is hashed again even when it keeps its size and mtime; the digest is what counts. A file
    changed within the last ``RACY_NS`` is not remembered (git's "racily clean" rule): file
    times are coarse, and a second write in the same tick would keep all four.
    """
    path = Path(path).expanduser().resolve()
    info = path.stat()
    stamp = [info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino]
    known = _read_memo(memo)
    entry = known.get(str(path))
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    if memo is not None and memo.parent.is_dir() and time.time_ns() - info.st_ctime_ns > RACY_NS:
        known = {name: entry for name, entry in known.items() if Path(name).exists()}  # forget deleted files
        known[str(path)] = {"stamp": stamp, "sha256": digest.hexdigest()}
        write_atomic(memo, lambda out: out.write_text(json.dumps(known, indent=1)))
    return digest.hexdigest()


def _read_memo(memo: Path | None) -> dict:
    try:
        known = json.loads(memo.read_text()) if memo is not None else {}
    except (OSError, ValueError):
        return {}  # absent or torn: every file is hashed again
    return known if isinstance(known, dict) else {}


def append_lines(path: Path, lines: list[str]) -> None:
    """Append whole lines to ``path`` and fsync them before returning.

    A journal written this way loses at most the line being appended when the process is
    killed or the machine loses power; its readers skip a line cut short.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as file:
        file.write("".join(lines).encode())
        file.flush()
        os.fsync(file.fileno())
