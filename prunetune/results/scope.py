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
    note: str | None = None  # why there is no drawing, for the command's output

    def html(self, directory: Path) -> str:
        parts = ["<h2>Pruning scope</h2>", f"<p>{self.text}</p>"]
        if self.image is not None:
            link = html.escape(str(self.image.relative_to(directory)))
            parts.append(f"<p><a href='{link}'><img src='{link}' alt='scope drawing'></a></p>")
        return "\n".join(parts)


def draw_scope(job, space, directory: Path) -> ScopeSection:
    """Render the dependency view of ``job``'s model (``space``: its search space) as SVG under ``directory/graph``."""
    from prunetune.pruning.drawing import draw_job, searched_fields  # torch, Graphviz: only when a report is written

    command = "prunetune graph CONFIG"
    try:
        drawing = draw_job(job, directory / FOLDER, views=(VIEW,), fmt="svg", searched=searched_fields(space))
    except PrunetuneError as error:
        why = f"the model could not be drawn here ({error}); `{command}` on the search's config draws it where " \
              "its data and model are"
        return ScopeSection(text=html.escape(why[0].upper() + why[1:]), note=f"scope drawing: {why}")
    source = drawing.sources[0]
    title = html.escape(drawing.graph.title)
    if not drawing.rendered:
        how = drawing.how_to_render("svg")
        return ScopeSection(files=[source], text=f"{title}. {html.escape(how)}.", note=f"scope drawing: {how}")
    return ScopeSection(drawing.images[0], [source, *drawing.images],
                        f"{title}. Each box is a pruning group (green: in the search's scope). "
                        f"<code>{html.escape(command)}</code> on the search's config draws it with its computational "
                        f"and combined views (<a href='{html.escape(str(source.relative_to(directory)))}'>DOT "
                        "source</a>).")
