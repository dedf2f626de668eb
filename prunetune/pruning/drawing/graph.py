"""What a drawing shows, read from Torch-Pruning's traced graph and prunetune's groups.

TP 1.6.1's ``DependencyGraph.module2node`` holds one ``Node`` per traced layer and per
autograd op between layers: ``_ElementWiseOp`` for every op it has no class for (add, mul,
ReLU, pooling, ...; the autograd function's name says which), ``_ConcatOp`` / ``_SplitOp`` /
``_ReshapeOp`` / ``_SliceOp`` ... for the ops whose channel indices it maps. ``Node.inputs`` /
``outputs`` are the data flow: the **computational graph**. A group is the closure of the
``Dependency`` edges fired from one layer's output channels (``get_pruning_group``): each item
is (dependency, indices), the dependency naming its ``source`` and ``target`` node and the
handler (``prune_out_channels`` / ``prune_in_channels``) that cuts the target. Those edges are
the **dependency graph**: an edge is a *direct* dependency where channels flow from one layer
into the next, a *forced shape match* where the traced op makes two tensors share channels
(a residual add or an SE gate's mul, a concat or split, a reshape) or where a depthwise conv
ties its input channels 1:1 to its output channels.

A node is drawn inside the box of the group whose channels it *outputs* (a handler cutting
its output side; TP's BN, activation and merge ops have one channel set, named "out"); a
consumer layer sits in the box of the group it produces. A node outputting the channels of
several groups (a concat joins them, a split parts them) stays outside every box and is
drawn with a double border.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field

import torch_pruning as tp
from torch import nn

from prunetune.pruning.scope import PrunableGroup
from prunetune.torch_tools import handler_side, is_depthwise

INPUT, OUTPUT = "(input)", "(output)"
NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm, nn.modules.instancenorm._InstanceNorm)
# Autograd function names (lower case, "Backward<n>" dropped) -> (kind, title) of TP's _ElementWiseOp nodes.
ELEMENTWISE = {
    "add": ("merge", "Add"), "sub": ("merge", "Sub"), "mul": ("merge", "Mul"), "div": ("merge", "Div"),
    "relu": ("activation", "ReLU"), "hardtanh": ("activation", "ReLU6"), "hardswish": ("activation", "Hardswish"),
    "hardsigmoid": ("activation", "Hardsigmoid"), "sigmoid": ("activation", "Sigmoid"),
    "silu": ("activation", "SiLU"), "gelu": ("activation", "GELU"), "tanh": ("activation", "Tanh"),
    "elu": ("activation", "ELU"), "leakyrelu": ("activation", "LeakyReLU"), "softmax": ("activation", "Softmax"),
    "mish": ("activation", "Mish"), "prelu": ("activation", "PReLU"),
    "maxpool2dwithindices": ("pool", "MaxPool"), "avgpool2d": ("pool", "AvgPool"),
    "adaptiveavgpool2d": ("pool", "AdaptiveAvgPool"), "adaptivemaxpool2d": ("pool", "AdaptiveMaxPool"),
    "mean": ("pool", "Mean (pool)"), "permute": ("reshape", "Permute"), "transpose": ("reshape", "Transpose"),
    "clone": ("other", "Clone"), "bmm": ("attention", "MatMul"), "matmul": ("attention", "MatMul"),
}
MERGES = {"merge"}
LAYER_KINDS = ("conv", "depthwise", "linear", "attention")  # what a block's box lists
STRUCTURAL = (tp.ops.OPTYPE.CONCAT, tp.ops.OPTYPE.SPLIT, tp.ops.OPTYPE.UNBIND, tp.ops.OPTYPE.SLICE,
              tp.ops.OPTYPE.EXPAND, tp.ops.OPTYPE.RESHAPE)
STRUCTURAL_TITLES = {tp.ops.OPTYPE.CONCAT: ("merge", "Concat"), tp.ops.OPTYPE.SPLIT: ("merge", "Split"),
                     tp.ops.OPTYPE.UNBIND: ("merge", "Unbind"), tp.ops.OPTYPE.SLICE: ("reshape", "Slice"),
                     tp.ops.OPTYPE.EXPAND: ("reshape", "Expand"), tp.ops.OPTYPE.RESHAPE: ("reshape", "Reshape"),
                     tp.ops.OPTYPE.OUTPUT: ("io", "Output")}


@dataclass
class DrawnNode:
    key: str                # the DOT node id: the module name, or "#<TP op id> <op>" for a traced op
    kind: str               # colour class: conv, depthwise, norm, activation, linear, merge, pool, ...
    title: str              # what it does: "Conv 3x3/2 64->128", "Add", "BatchNorm2d 64"
    name: str | None = None  # module name (None for ops)
    groups: tuple[int, ...] = ()  # groups whose channels it outputs
    folded: tuple[str, ...] = ()  # titles of nodes drawn inside this one (compact detail)
    modules: tuple[str, ...] = ()  # module names this node stands for (itself, and what it folds or collapses)
    hidden: tuple[int, ...] = ()  # groups wholly inside this node (a block), listed in it
    rows: tuple[tuple[str, str, str, int | None], ...] = ()  # a block's layers: (name in it, kind, title, group)
    block: str | None = None      # the block (``compact.find_blocks``) that computes it


@dataclass
class DrawnGroup:
    index: int              # G<index> in the drawing, numbered in execution order
    name: str               # its first producer (the name scopes and patterns use)
    channels: int
    status: str             # "in scope", "included", "excluded" or "out of scope"
    pattern: str | None = None  # the include / exclude pattern that decided it
    removal: tuple[int, int, int] | None = None  # the schedule's first step removes, last step removes, left after
    members: tuple[str, ...] = ()  # module names of every layer it cuts (producers and consumers)

    @property
    def selected(self) -> bool:
        return self.status in ("in scope", "included")


@dataclass
class DrawnGraph:
    title: str
    nodes: dict[str, DrawnNode]             # in execution order
    flow: list[tuple[str, str]]             # data flow, producer -> consumer
    coupling: dict[tuple[str, str], str]    # (upstream, downstream) -> "direct" or "shape"
    groups: list[DrawnGroup]
    targets: list[float] = field(default_factory=list)  # the schedule's cumulative sparsities
    notes: list[str] = field(default_factory=list)  # what the drawing leaves out or assumes


def node_kind(node) -> tuple[str, str]:
    """(kind, title) of a TP node: what colour it gets and what its box says under the name."""
    module, optype = node.module, node.type
    if isinstance(module, nn.Conv2d):
        kernel = "x".join(map(str, module.kernel_size))
        stride = f"/{module.stride[0]}" if module.stride[0] > 1 else ""
        if is_depthwise(module):
            return "depthwise", f"DW Conv {kernel}{stride} {module.out_channels}"
        groups = f" g{module.groups}" if module.groups > 1 else ""
        return "conv", f"Conv {kernel}{stride}{groups} {module.in_channels}->{module.out_channels}"
    if isinstance(module, nn.Linear):
        return "linear", f"Linear {module.in_features}->{module.out_features}"
    if isinstance(module, NORMS):
        width = getattr(module, "num_features", None) or getattr(module, "num_channels", None) \
            or getattr(module, "normalized_shape", ("?",))[0]
        return "norm", f"{type(module).__name__} {width}"
    if optype == tp.ops.OPTYPE.MHA:
        return "attention", type(module).__name__
    if optype in STRUCTURAL_TITLES:
        return STRUCTURAL_TITLES[optype]
    if optype == tp.ops.OPTYPE.ELEMENTWISE:
        op = re.sub(r"backward\d*$", "", type(node.grad_fn).__name__.lower() if node.grad_fn is not None else "")
        kind, title = ELEMENTWISE.get(op, ("other", op.title() or "Op"))
        if kind == "merge" and len(node.inputs) < 2:
            return "other", f"{title} (scale)"  # x * constant: no second tensor to match
        return kind, title
    if optype == tp.ops.OPTYPE.PRELU:
        return "activation", "PReLU"
    return "other", type(module).__name__


def _order(nodes: list, position: dict) -> list:
    """Execution order: Kahn's topological sort, a layer ranked by its registration, an op by its inputs."""
    indegree = {n: sum(i in position for i in n.inputs) for n in position}
    rank = {}
    ready = []
    for n in nodes:
        if indegree[n] == 0:
            rank[n] = position[n]
            heapq.heappush(ready, (rank[n], id(n), n))
    ordered = []
    while ready:
        _, _, n = heapq.heappop(ready)
        ordered.append(n)
        for out in n.outputs:
            if out not in indegree:
                continue
            indegree[out] -= 1
            rank[out] = max(rank.get(out, -1.0), rank[n])
            if indegree[out] == 0:
                own = position[out]
                heapq.heappush(ready, (own if own >= 0 else rank[out] + 0.5, id(out), out))
    return ordered + [n for n in nodes if n not in rank]  # a cycle (a reused layer) keeps trace order


def read_graph(model: nn.Module, graph: tp.DependencyGraph, groups: list[tuple[PrunableGroup, DrawnGroup]],
               input_shape: tuple[int, ...], title: str, blocks: dict | None = None) -> DrawnGraph:
    """The nodes, data flow, couplings and groups of ``graph``, in execution order.

    ``groups`` pairs each prunable group (``all_groups``) with what its box says; ``blocks``
    maps a TP node to the block computing it (``compact.block_of_nodes``). Ops fed by
    parameters only (the ``t()`` of a Linear's weight) are left out: they carry no channels of
    the data.
    """
    blocks = blocks or {}
    names = {module: name for name, module in model.named_modules()}
    registered = {module: index for index, module in enumerate(names)}
    traced = [n for n in graph.module2node.values() if n.inputs or names.get(n.module) is not None]
    position = {n: float(registered.get(n.module, -1)) for n in traced}
    ordered = _order(traced, position)
    keys = {n: names.get(n.module) or f"#{getattr(n.module, 'id', index)} {node_kind(n)[1]}"
            for index, n in enumerate(ordered)}
    outputs_of = {n: [o for o in n.outputs if o in keys] for n in ordered}
    owners: dict = {}
    for drawn_group_index, (group, _) in enumerate(groups):
        for dep, _ in group.group:
            if handler_side(dep.handler) == "out" and dep.target in keys:
                owners.setdefault(dep.target, []).append(drawn_group_index)
    nodes = {}
    for n in ordered:
        kind, node_title = node_kind(n)
        mine = tuple(sorted({groups[i][1].index for i in owners.get(n, [])}))
        nodes[keys[n]] = DrawnNode(keys[n], kind, node_title, names.get(n.module), mine,
                                   modules=(names[n.module],) if n.module in names else (), block=blocks.get(n))
    flow = [(keys[n], keys[o]) for n in ordered for o in outputs_of[n]]
    starts = [keys[n] for n in ordered if not any(i in keys for i in n.inputs)]
    ends = [keys[n] for n in ordered if not outputs_of[n]]
    shape = "x".join(map(str, input_shape[1:]))
    nodes = {INPUT: DrawnNode(INPUT, "io", f"input {shape}"), **nodes,
             OUTPUT: DrawnNode(OUTPUT, "io", "output")}
    flow = [(INPUT, s) for s in starts] + flow + [(e, OUTPUT) for e in ends]
    return DrawnGraph(title, nodes, flow, _couplings(groups, keys), [g for _, g in groups])


def _couplings(groups: list[tuple[PrunableGroup, DrawnGroup]], keys: dict) -> dict[tuple[str, str], str]:
    """Every data-flow edge a group's dependencies cross, as direct or forced shape match."""
    found: dict[tuple[str, str], str] = {}
    for group, _ in groups:
        for dep, _ in group.group:
            source, target = dep.source, dep.target
            if source is target or source not in keys or target not in keys:
                continue
            upstream, downstream = (source, target) if target in source.outputs else (target, source)
            if downstream not in upstream.outputs:
                continue
            kind = "shape" if _forces_shape(upstream, downstream, keys) else "direct"
            edge = (keys[upstream], keys[downstream])
            found[edge] = "shape" if "shape" in (kind, found.get(edge)) else kind
    return found


def _forces_shape(upstream, downstream, keys: dict) -> bool:
    """Channels meet another tensor's (add, mul, concat), get re-indexed (split, reshape), or
    pass 1:1 through a depthwise conv into its output."""
    if downstream.type in STRUCTURAL or upstream.type in STRUCTURAL:
        return True
    if isinstance(downstream.module, nn.Conv2d) and is_depthwise(downstream.module):
        return True
    kind, _ = node_kind(downstream)
    return kind in MERGES and sum(i in keys for i in downstream.inputs) >= 2
