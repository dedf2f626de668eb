"""The report's pruning-scope section: the search's model drawn with its groups and scope.

Drawn at report time from the search's saved job (``prunetune graph`` on the same job gives
the same drawing and its other views). Torch and Graphviz load only when a report is written,
so importing ``prunetune.results`` stays light.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from prunetune.errors import PrunetuneError

FOLDER = "graph"  # under the report's folder
VIEW = "dependency"  # the view whose boxes show the scope


@dataclass
class ScopeSection:
    image: Path | None = None  # the rendered drawing (SVG), None when dot is missing or drawing failed
    files: list[Path] = field(default_factory=list)
    text: str = ""  # what the page says under the heading

    def html(self, directory: Path) -> str:
        parts = ["<h2>Pruning scope</h2>", f"<p>{self.text}</p>"]
        if self.image is not None:
            link = html.escape(str(self.image.relative_to(directory)))
            parts.append(f"<p><a href='{link}'><img src='{link}' alt='scope drawing'></a></p>")
        return "\n".join(parts)


def draw_scope(job, space, directory: Path) -> ScopeSection:
    """Render the dependency view of ``job``'s model (``space``: its search space) as SVG under ``directory/graph``."""
    from prunetune.pruning.drawing import (  # torch, Graphviz: only when a report is written
        draw_job,
        searched_fields,
    )

    command = f"prunetune graph CONFIG --view {VIEW}"
    try:
        drawing = draw_job(job, directory / FOLDER, views=(VIEW,), fmt="svg", searched=searched_fields(space))
    except PrunetuneError as error:
        return ScopeSection(text=html.escape(f"the model could not be drawn here ({error}); `{command}` on the "
                                             "search's config draws it where its data and model are"))
    source = drawing.sources[0]
    title = html.escape(drawing.graph.title)
    if not drawing.rendered:
        how = html.escape(drawing.how_to_render("svg"))
        return ScopeSection(files=[source], text=f"{title}. {how}.")
    return ScopeSection(drawing.images[0], [source, *drawing.images],
                        f"{title}. Each box is a pruning group (green: in the search's scope); the same drawing and "
                        f"its computational and combined views: <code>{html.escape(command)}</code> "
                        f"(<a href='{html.escape(str(source.relative_to(directory)))}'>DOT source</a>).")
