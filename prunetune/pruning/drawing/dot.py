"""A ``DrawnGraph`` as Graphviz DOT source, one view at a time, on one layout.

Every view holds the same nodes, boxes and edges in the same order, so ``dot`` places every
node at the same position in all of them (a test compares the positions): the views differ
only in which edges are visible. Data-flow edges set the layout (``constraint=true``); the
coupling edges follow it (``constraint=false``) and are hidden in the computational view,
the data flow in the dependency view.
"""

from __future__ import annotations

import html
import textwrap

import graphviz

from prunetune.pruning.drawing.graph import DrawnGraph, DrawnGroup, DrawnNode

VIEWS = ("computational", "dependency", "combined")
KINDS = {  # kind -> (fill colour, legend entry), in legend order
    "conv": ("#6FA8DC", "convolution"),
    "depthwise": ("#B4D4F1", "depthwise convolution"),
    "linear": ("#EA9999", "linear"),
    "norm": ("#93C47D", "normalisation (BN, LN, GN)"),
    "activation": ("#FFE599", "activation"),
    "merge": ("#C27BA0", "add / mul / concat / split"),
    "pool": ("#76C7C0", "pooling"),
    "attention": ("#F4A6C9", "attention"),
    "reshape": ("#D9D9D9", "reshape / flatten"),
    "other": ("#EEEEEE", "other op"),
    "block": ("#FFFFFF", "block: its layers, each with the group it outputs"),
    "blocks": ("#FFFFFF", "identical blocks, summed"),
    "io": ("#FFFFFF", "model input / output"),
}
STATUS_STYLE = {  # cluster attributes per scope status
    "in scope": {"color": "#2E7D32", "fillcolor": "#E8F5E9", "penwidth": "2.5", "style": "rounded,filled"},
    "included": {"color": "#2E7D32", "fillcolor": "#E8F5E9", "penwidth": "2.5", "style": "rounded,filled"},
    "excluded": {"color": "#C62828", "fillcolor": "#FDECEA", "penwidth": "2", "style": "rounded,filled,dashed"},
    "out of scope": {"color": "#9E9E9E", "fillcolor": "#F7F7F7", "penwidth": "1", "style": "rounded,filled"},
}
FLOW = {"color": "#606060", "arrowsize": "0.6"}
COUPLING = {
    "direct": {"color": "#2E7D32", "style": "dashed", "penwidth": "1.6"},
    "shape": {"color": "#D32F2F", "style": "bold", "penwidth": "2.6"},
}
HIDDEN = {"style": "invis"}
EDGES = ("grey arrow: data flow (computational and combined view)",
         "green dashed: direct dependency, one layer's channels feed the next (dependency and combined view)",
         "red bold: forced shape match: residual add or mul, concat, split, reshape, depthwise conv 1:1")
LEGEND_WIDTH = 110  # characters per legend line


def status_line(group: DrawnGroup) -> str:
    if group.status == "included":
        return f"in scope (include {group.pattern!r})"
    if group.status == "excluded":
        return f"excluded by pattern {group.pattern!r}"
    return group.status


def steps_line(targets: list[float], removal: tuple[int, int, int] | None) -> str | None:
    """"step 1 (0.10): -6, step 3 (0.30): -7 -> 45 left": what the schedule removes from a group."""
    if removal is None or not targets:
        return None
    first, last, left = removal
    if len(targets) == 1:
        return f"step 1 ({targets[0]:.2f}): -{first} -> {left} left"
    return f"step 1 ({targets[0]:.2f}): -{first}, step {len(targets)} ({targets[-1]:.2f}): -{last} -> {left} left"


def group_label(group: DrawnGroup, targets: list[float]) -> str:
    lines = [f"G{group.index} {group.name}: {group.channels} ch, {status_line(group)}"]
    steps = steps_line(targets, group.removal)
    return "\\l".join(lines + ([steps] if steps else [])) + "\\l"  # DOT: left-justified lines


def hidden_summary(groups: list[DrawnGroup], targets: list[float]) -> list[str]:
    """One line per scope status of the groups inside collapsed blocks, and their summed steps."""
    lines = []
    for status in STATUS_STYLE:
        chosen = [g for g in groups if g.status == status]
        if chosen:
            lines.append(f"{len(chosen)} group{'s' if len(chosen) > 1 else ''} {status}: "
                         f"{sum(g.channels for g in chosen)} ch")
    removals = [g.removal for g in groups if g.removal is not None]
    steps = steps_line(targets, tuple(map(sum, zip(*removals)))) if removals else None
    return lines + ([steps] if steps else [])


def node_label(node: DrawnNode, drawn: DrawnGraph) -> str:
    if node.kind == "block":
        return block_table(node, drawn)
    lines = [node.name] if node.name else []
    lines.append(" + ".join((node.title, *node.folded)))
    if node.hidden:
        lines += hidden_summary([g for g in drawn.groups if g.index in node.hidden], drawn.targets)
    if len(node.groups) > 1:
        lines.append("channels of " + " + ".join(f"G{g}" for g in node.groups))
    return "\\n".join(lines)  # DOT: centred lines


def block_table(node: DrawnNode, drawn: DrawnGraph) -> str:
    """A block as an HTML-like table: one row per layer, coloured by its op, with its group's box colour."""
    groups = {g.index: g for g in drawn.groups}
    rows = [f"<tr><td colspan='2' align='left'><b>{html.escape(node.key)}</b>  {html.escape(node.title)}</td></tr>"]
    for name, kind, title, index in node.rows:
        layer = f"<td bgcolor='{KINDS[kind][0]}' align='left'>{html.escape(name)}: {html.escape(title)}</td>"
        group = groups.get(index)
        if group is None:
            rows.append(f"<tr>{layer}<td>not prunable</td></tr>")
            continue
        text = f"G{group.index} {group.channels} ch, {status_line(group)}"
        steps = steps_line(drawn.targets, group.removal)
        text = "<br align='left'/>".join(html.escape(line) for line in (text, steps) if line)
        rows.append(f"<tr>{layer}<td bgcolor='{STATUS_STYLE[group.status]['fillcolor']}' "
                    f"color='{STATUS_STYLE[group.status]['color']}' align='left'>{text}</td></tr>")
    table = "<table border='1' cellborder='1' cellspacing='0' cellpadding='3' bgcolor='white'>"
    return f"<{table}{''.join(rows)}</table>>"


def _node(graph: graphviz.Digraph, node: DrawnNode, drawn: DrawnGraph) -> None:
    fill, _ = KINDS.get(node.kind, KINDS["other"])
    attributes = {"label": node_label(node, drawn), "fillcolor": fill}
    if len(node.modules) > 1:
        attributes["tooltip"] = ", ".join(node.modules)
    if len(node.groups) > 1:
        attributes["peripheries"] = "2"
    if node.kind == "io":
        attributes["shape"] = "oval"
    if node.kind == "blocks":
        attributes.update(shape="box3d", style="filled", margin="0.2,0.1")
    if node.kind == "block":
        attributes.update(shape="plain", style="")
    graph.node(node.key, **attributes)


def legend(drawn: DrawnGraph, view: str) -> str:
    """An HTML-like table over the drawing: colours of the kinds present, boxes, edges, notes.

    The same size in every view (only the short view line differs), so that the drawing sits
    at the same place under it: a wider label would shift every node.
    """
    kinds = {node.kind for node in drawn.nodes.values()}
    swatches = "".join(f"<td bgcolor='{fill}'>{html.escape(text)}</td>" for kind, (fill, text) in KINDS.items()
                       if kind in kinds)
    boxes = "".join(f"<td bgcolor='{style['fillcolor']}' border='1' color='{style['color']}'>group "
                    f"{html.escape(status)}</td>" for status, style in STATUS_STYLE.items() if status != "included")
    lines = [f"<b>{html.escape(drawn.title)}</b>", f"{view} view",
             "<table border='0' cellspacing='3'><tr>" + swatches + "</tr></table>",
             "<table border='0' cellspacing='3'><tr>" + boxes
             + "<td>double border: channels of several groups</td></tr></table>",
             *map(html.escape, EDGES)]
    lines += [html.escape(line) for note in drawn.notes for line in textwrap.wrap(note, LEGEND_WIDTH)]
    return ("<<table border='0' cellborder='0' cellpadding='2'>"
            + "".join(f"<tr><td align='left'>{line}</td></tr>" for line in lines) + "</table>>")


def dot_source(drawn: DrawnGraph, view: str) -> graphviz.Digraph:
    """The DOT source of one view (``VIEWS``) of ``drawn``."""
    if view not in VIEWS:
        raise ValueError(f"view {view!r}; known: {', '.join(VIEWS)}")
    graph = graphviz.Digraph(
        name=f"{view}",
        graph_attr={"rankdir": "TB", "newrank": "true", "nodesep": "0.25", "ranksep": "0.3",
                    "fontname": "Helvetica", "fontsize": "12", "labelloc": "t", "labeljust": "l",
                    "label": legend(drawn, view)},
        node_attr={"shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "fontsize": "10",
                   "margin": "0.08,0.03", "height": "0.3"},
        edge_attr={"arrowsize": "0.6"},
    )
    boxed = {g.index: [n for n in drawn.nodes.values() if n.groups == (g.index,)] for g in drawn.groups}
    placed = set()
    for node in drawn.nodes.values():
        if len(node.groups) == 1 and node.groups[0] not in placed:
            group = next(g for g in drawn.groups if g.index == node.groups[0])
            placed.add(group.index)
            with graph.subgraph(name=f"cluster_g{group.index}") as cluster:
                cluster.attr(label=group_label(group, drawn.targets), fontname="Helvetica", fontsize="11",
                             **STATUS_STYLE[group.status])
                for member in boxed[group.index]:
                    _node(cluster, member, drawn)
        elif len(node.groups) != 1:
            _node(graph, node, drawn)
    show_flow, show_coupling = view != "dependency", view != "computational"
    for upstream, downstream in drawn.flow:
        graph.edge(upstream, downstream, **(FLOW if show_flow else HIDDEN))
    for (upstream, downstream), kind in drawn.coupling.items():
        graph.edge(upstream, downstream, dir="none", constraint="false",
                   **(COUPLING[kind] if show_coupling else HIDDEN))
    return graph
