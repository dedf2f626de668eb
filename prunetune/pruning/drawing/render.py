"""Write each view's DOT source and render it with Graphviz's ``dot``, when it is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import graphviz

from prunetune.errors import RunError
from prunetune.pruning.drawing.dot import VIEWS, dot_source
from prunetune.pruning.drawing.graph import DrawnGraph

FORMATS = ("png", "svg", "pdf")
INSTALL_DOT = ("install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
               "`make dot` does it)")


@dataclass
class Drawing:
    graph: DrawnGraph
    detail: str                               # the detail level drawn (``compact.DETAILS``, auto resolved)
    sources: list[Path] = field(default_factory=list)  # one .dot file per view
    images: list[Path] = field(default_factory=list)   # the rendered views; empty without ``dot``

    @property
    def rendered(self) -> bool:
        return bool(self.images)

    def how_to_render(self, fmt: str) -> str:
        """One line: how to render the sources once ``dot`` is there."""
        first = self.sources[0]
        return (f"Graphviz's dot is not installed: wrote the DOT sources only; {INSTALL_DOT}, then "
                f"`dot -T{fmt} {first} -o {first.with_suffix('.' + fmt)}` (one call per .dot file)")


def file_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "model"


def has_dot() -> bool:
    return shutil.which("dot") is not None


def write_views(drawing: Drawing, directory: Path, stem: str, views: tuple[str, ...] = VIEWS,
                fmt: str = "png") -> Drawing:
    """``directory/<stem>_<view>.dot`` for each view, and ``.<fmt>`` beside each when ``dot`` runs."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}; known: {', '.join(FORMATS)}")
    directory.mkdir(parents=True, exist_ok=True)
    for view in views:
        path = directory / f"{stem}_{view}.dot"
        path.write_text(dot_source(drawing.graph, view).source)
        drawing.sources.append(path)
    if not has_dot():
        return drawing
    for path in drawing.sources:
        image = path.with_suffix(f".{fmt}")
        try:
            # quiet: dot's warnings about its own font metrics are not the user's business
            graphviz.render("dot", fmt, path, outfile=image, quiet=True)
        except (subprocess.CalledProcessError, graphviz.ExecutableNotFound) as error:
            raise RunError(f"dot failed to render {path} as {fmt}: {error}") from None
        drawing.images.append(image)
    return drawing
