"""Graphviz drawings of a job's dependency graph and pruning groups (seed 003 2.6).

Three views of one layout: the **computational** graph (data flow, nodes coloured by
operation), the **dependency** graph (the pruning coupling: direct dependencies and forced
shape matches) and both **combined**; each pruning group is a box saying whether the job's
scope prunes it, its channels, and what the schedule's first and last step remove there.

``graph.py`` reads Torch-Pruning's traced graph and the groups, ``groups.py`` the scope
status and step counts, ``compact.py`` folds layers and collapses repeated blocks for
larger models, ``dot.py`` writes the DOT source of a view, ``render.py`` renders it with
Graphviz's ``dot``, ``job.py`` does it all for a job config (``prunetune graph``).
docs/pruning.md, "Drawing the scope".
"""

from prunetune.pruning.drawing.compact import DETAILS
from prunetune.pruning.drawing.dot import VIEWS, dot_source
from prunetune.pruning.drawing.graph import (
           DrawnGraph,
           DrawnGroup,
           DrawnNode,
           read_graph,
)
from prunetune.pruning.drawing.job import describe_job, draw_job, searched_fields
from prunetune.pruning.drawing.render import FORMATS, Drawing, has_dot, write_views

__all__ = ["DETAILS", "FORMATS", "VIEWS", "Drawing", "DrawnGraph", "DrawnGroup", "DrawnNode", "describe_job",
           "dot_source", "draw_job", "has_dot", "read_graph", "searched_fields", "write_views"]
