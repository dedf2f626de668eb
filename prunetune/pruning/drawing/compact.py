"""Fewer boxes for larger models: fold norms and activations, draw blocks as one box each.

Detail levels (``DETAILS``):

- ``full``: every traced layer and op.
- ``layers``: a norm or activation that only follows one node of the same group is drawn
  inside that node ("Conv 1x1 16->72 + BatchNorm2d + ReLU"): the same groups and couplings,
  half the boxes.
- ``blocks``: each block (``find_blocks``: a ResNet bottleneck, an inverted residual, an
  MBConv, a transformer block) is one box listing its Conv/Linear layers, each with the group
  it outputs; a group living inside one block is listed there, a group a block shares with
  others (a residual stream) is the box around them. A run of three or more identical
  consecutive blocks keeps its first and draws the rest as one box summing their groups
  ("layer3.2 .. layer3.5: 4 blocks like layer3.1").
- ``auto``: ``full`` when the drawing is at most ``FULL_RANKS`` boxes deep (ResNet-18: 65),
  else ``blocks`` (ResNet-50, MobileNetV3, EfficientNet-B0), or ``layers`` for a model
  without blocks.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from prunetune.pruning.drawing.graph import LAYER_KINDS, DrawnGraph, DrawnNode
from prunetune.torch_tools import forward_hooks

DETAILS = ("auto", "full", "layers", "blocks")
FULL_RANKS = 80
FOLDABLE = ("norm", "activation")


def find_blocks(model: nn.Module) -> dict[str, tuple]:
    """Block name -> its structure, in registration order.

    A block is a module named by its index in a container (``layer1.0``, ``features.4``)
    holding two or more Conv/Linear layers, and not a stage (a module holding two or more
    such modules, as EfficientNet's ``features.2``) nor inside a block (the SE module inside
    an inverted residual). Two blocks of equal structure have the same layers, types and shapes.
    """
    def layers(module: nn.Module) -> int:
        return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in module.modules())

    candidates = [name for name, module in model.named_modules()
                  if name.rsplit(".", 1)[-1].isdigit() and layers(module) >= 2]

    def parent(name: str) -> str:
        return max((c for c in candidates if name.startswith(c + ".")), key=len, default="")

    modules = dict(model.named_modules())
    children = defaultdict(list)
    for name in candidates:
        children[parent(name)].append(name)

    def wrapper(name: str) -> bool:  # a stage of one block: the block is drawn, not the stage
        return any(layers(modules[child]) == layers(modules[name]) for child in children[name])

    blocks: dict[str, tuple] = {}
    for name in candidates:
        if len(children[name]) < 2 and not wrapper(name) and not any(name.startswith(b + ".") for b in blocks):
            blocks[name] = _structure(modules[name])
    return blocks


def _structure(module: nn.Module) -> tuple:
    """Layer names, types and tensor shapes (not hyperparameters such as a drop-path rate)."""
    def shapes(m: nn.Module) -> tuple:
        tensors = list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))
        extra = tuple(getattr(m, a, None) for a in ("stride", "padding", "dilation", "groups"))
        return tuple((n, tuple(t.shape)) for n, t in tensors) + extra

    return tuple((name, type(m).__name__, shapes(m)) for name, m in module.named_modules())


@contextmanager
def recording_blocks(model: nn.Module, blocks: dict[str, tuple]) -> Iterator[dict[str, list]]:
    """While the graph is traced: block name -> [(autograd functions of its inputs, of its output)].

    TP's nodes keep the autograd function of what they compute (``Node.grad_fn``), so the
    nodes of a block are those reached backwards from its output before its inputs: exact for
    the ops too (a residual add, the ReLU after it), which have no module name.
    """
    modules = dict(model.named_modules())
    seen: dict[str, list] = defaultdict(list)

    def hook(name: str):
        def record(module, inputs, output):
            tensors = output if isinstance(output, (tuple, list)) else (output,)
            ends = [t.grad_fn for t in tensors if getattr(t, "grad_fn", None) is not None]
            starts = {t.grad_fn for t in inputs if getattr(t, "grad_fn", None) is not None}
            if ends:
                seen[name].append((starts, ends))
        return record

    with forward_hooks((modules[name], hook(name)) for name in blocks):
        yield seen


def block_of_nodes(graph, seen: dict[str, list]) -> dict:
    """TP node -> the name of the block that computes it."""
    by_grad_fn = {node.grad_fn: node for node in graph.module2node.values() if node.grad_fn is not None}
    owner = {}
    for name, calls in seen.items():
        for starts, ends in calls:
            stack = [by_grad_fn[end] for end in ends if end in by_grad_fn]
            while stack:
                node = stack.pop()
                if node in owner or node.grad_fn in starts:
                    continue
                owner[node] = name
                stack.extend(node.inputs)
    return owner


def contract(drawn: DrawnGraph, into: dict[str, str], added: dict[str, DrawnNode] | None = None) -> DrawnGraph:
    """``drawn`` with each key of ``into`` drawn as the node it maps to (one of ``drawn``'s, or
    of ``added``, placed where its first member was); edges follow, self-loops vanish."""
    added = added or {}
    nodes: dict[str, DrawnNode] = {}
    for key, node in drawn.nodes.items():
        target = into.get(key, key)
        if target not in nodes:
            nodes[target] = added.get(target) or dataclasses.replace(node)
        if target != key and target not in added:
            host = nodes[target]
            host.folded += (node.title, *node.folded)
            host.modules += node.modules
    flow = list(dict.fromkeys((into.get(u, u), into.get(v, v)) for u, v in drawn.flow
                              if into.get(u, u) != into.get(v, v)))
    coupling: dict[tuple[str, str], str] = {}
    for (u, v), kind in drawn.coupling.items():
        edge = (into.get(u, u), into.get(v, v))
        if edge[0] != edge[1]:
            coupling[edge] = "shape" if "shape" in (kind, coupling.get(edge)) else kind
    return dataclasses.replace(drawn, nodes=nodes, flow=flow, coupling=coupling)


def fold_layers(drawn: DrawnGraph) -> DrawnGraph:
    """Norms and activations drawn inside the one node before them, when both carry the same group."""
    inputs, outputs = defaultdict(list), defaultdict(list)
    for u, v in drawn.flow:
        outputs[u].append(v)
        inputs[v].append(u)
    into: dict[str, str] = {}
    for key, node in drawn.nodes.items():
        if node.kind not in FOLDABLE or len(inputs[key]) != 1 or len(outputs[inputs[key][0]]) != 1:
            continue
        head = into.get(inputs[key][0], inputs[key][0])
        if drawn.nodes[head].kind not in ("io", "block", "blocks") and drawn.nodes[head].groups == node.groups:
            into[key] = head
    return contract(drawn, into)


def _boxed(key: str, kind: str, title: str, members: list[DrawnNode], drawn: DrawnGraph,
           rows: tuple = ()) -> DrawnNode:
    """One box for ``members``: the groups it shares with the rest stay boxes around it, the
    groups wholly inside it are listed in it."""
    keys = {m.key for m in members}
    inside = {g for m in members for g in m.groups}
    outside = {g for k, n in drawn.nodes.items() if k not in keys for g in n.groups}
    return DrawnNode(key, kind, title, name=key, groups=tuple(sorted(inside & outside)),
                     modules=tuple(name for m in members for name in m.modules),
                     hidden=tuple(sorted(inside - outside)), rows=rows, block=members[0].block)


def draw_blocks(drawn: DrawnGraph, blocks: dict[str, tuple], classes: dict[str, str]) -> DrawnGraph:
    """Each block one box listing its layers; a run of identical blocks keeps its first."""
    members = defaultdict(list)
    for node in drawn.nodes.values():
        if node.block is not None:
            members[node.block].append(node)
    into, added = {}, {}
    for name, nodes in members.items():
        rows = tuple((n.name[len(name) + 1:], n.kind, n.title, n.groups[0] if len(n.groups) == 1 else None)
                     for n in nodes if n.kind in LAYER_KINDS and n.name)
        added[name] = _boxed(name, "block", classes.get(name, "block"), nodes, drawn, rows)
        into.update({n.key: name for n in nodes})
    by_block = contract(drawn, into, added)
    into, added = {}, {}
    for run in _runs([b for b in blocks if b in members], blocks):
        hidden = [by_block.nodes[b] for b in run[1:]]
        key, title = f"{run[1]} .. {run[-1]}", f"{len(run) - 1} blocks like {run[0]}"
        merged = [dataclasses.replace(h, groups=h.groups + h.hidden) for h in hidden]
        added[key] = _boxed(key, "blocks", title, merged, by_block)
        into.update({h.key: key for h in hidden})
    return contract(by_block, into, added)


def _runs(names: list[str], blocks: dict[str, tuple]) -> list[list[str]]:
    """Runs of three or more consecutive sibling blocks of equal structure (a run of two draws both)."""
    runs: list[list[str]] = []
    for name in names:
        last = runs[-1][-1] if runs else None
        if last is not None and _next_sibling(last, name) and blocks[last] == blocks[name]:
            runs[-1].append(name)
        else:
            runs.append([name])
    return [run for run in runs if len(run) >= 3]


def _next_sibling(first: str, second: str) -> bool:
    parent, _, index = first.rpartition(".")
    other_parent, _, other_index = second.rpartition(".")
    return parent == other_parent and int(other_index) == int(index) + 1


def depth(drawn: DrawnGraph) -> int:
    """Boxes on the longest data-flow path: how many rows the drawing needs."""
    inputs = defaultdict(list)
    for u, v in drawn.flow:
        inputs[v].append(u)
    level: dict[str, int] = {}
    for key in drawn.nodes:  # execution order: inputs first
        level[key] = 1 + max((level.get(i, 0) for i in inputs[key]), default=0)
    return max(level.values(), default=0)


def simplify(drawn: DrawnGraph, detail: str, blocks: dict[str, tuple], classes: dict[str, str]
             ) -> tuple[DrawnGraph, str]:
    """``drawn`` at ``detail`` (``DETAILS``), and the level used (``auto`` resolved)."""
    if detail not in DETAILS:
        raise ValueError(f"detail {detail!r}; known: {', '.join(DETAILS)}")
    has_blocks = any(node.block for node in drawn.nodes.values())
    if detail == "auto":
        detail = "full" if depth(drawn) <= FULL_RANKS else "blocks" if has_blocks else "layers"
    if detail == "full":
        return drawn, detail
    if detail == "blocks" and has_blocks:
        return fold_layers(draw_blocks(drawn, blocks, classes)), detail
    return fold_layers(drawn), "layers"
