"""Small file helpers shared by every layer that writes results."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


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
