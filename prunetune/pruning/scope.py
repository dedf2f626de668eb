"""Which channels may be pruned: the dependency graph's groups, filtered by scope.

A ``PrunableGroup`` is one Torch-Pruning group (coupled layers that must lose the same
channels) seen from its producers (layers whose output channels are cut) and consumers
(layers whose input channels are cut). Scopes:

- ``all``: every group with a Conv/Linear producer, except the classifier's outputs.
- ``expand``: the intermediate dimension only ("MLP-only", seed 000): channels produced
  and consumed inside one block, never reaching a residual merge, a concat or the head.
  Found from the graph, not per architecture: a group is intermediate when
  (1) no merge op (add/sub, concat, split, reshape) carries its channels,
  (2) the classifier does not consume them,
  (3) its producers and consumers sit inside one block: their lowest common ancestor
      module is neither the model root nor a container of the model's first layer (so
      a stem feeding a block's depthwise conv is not "expand"), and
  (4) it is not a side branch that maps another non-merged group's channels back onto
      themselves (the squeeze dimension of squeeze-excitation).
  This gives the expand convs of inverted residuals with their depthwise conv, BN and SE
  layers, both inner convs of ResNet basic / bottleneck blocks, and fc1 of MLP blocks.

``include`` / ``exclude`` module-name patterns (fnmatch) override the scope per group: a
group is named by its producers.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from prunetune.errors import ModelError, UserError
from prunetune.registry import SCOPES
from prunetune.torch_tools import handler_side, is_depthwise, training_flags_restored

MERGE_OPS = ("Add", "Sub", "Cat", "Split", "View", "Reshape", "Unsafe")


@dataclass(eq=False)
class PrunableGroup:
    """One prunable group: its TP group and the roles of its layers."""

    group: tp.dependency.Group
    producers: list[tuple[str, nn.Module]]
    consumers: list[tuple[str, nn.Module]]
    members: list[tuple[str, nn.Module, str]] = field(default_factory=list)  # (name, module, "in"/"out")

    @property
    def name(self) -> str:
        return self.producers[0][0]

    @property
    def channels(self) -> int:
        return len(self.group[0].idxs)

    @property
    def root(self) -> nn.Module:
        return self.group[0].dep.target.module

    @property
    def channel_groups(self) -> int:
        """G when a grouped conv (not depthwise) or GroupNorm splits the channels into G blocks.

        TP's cut of such a layer assumes every block loses the same in-block positions
        (ConvPruner keeps the first 1/G of the kept input indices), as its own MetaPruner
        ensures; the selection must then remove whole positions across blocks.
        """
        counts = [m.groups for _, m, _ in self.members
                  if isinstance(m, nn.Conv2d) and m.groups > 1 and not is_depthwise(m)]
        counts += [m.num_groups for _, m, _ in self.members if isinstance(m, nn.GroupNorm)]
        return max(counts, default=1)

    @property
    def channel_step(self) -> int:
        """The count this group's channels must stay a multiple of (1 when free).

        nn.MultiheadAttention splits its embedding into ``num_heads`` equal heads and refuses
        an embed_dim they do not divide, so a group holding one (ViT's residual stream) is
        cut in multiples of its head count.
        """
        heads = [m.num_heads for _, m, _ in self.members if isinstance(m, nn.MultiheadAttention)]
        return math.lcm(1, *heads)


def build_graph(model: nn.Module, example_input: torch.Tensor) -> tp.DependencyGraph:
    """Trace the model; restore its train/eval mode (TP 1.6.1 leaves it in eval)."""
    with training_flags_restored(model):
        try:
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_input)
        except (ZeroDivisionError, TypeError, IndexError, KeyError, ValueError) as error:
            # Torch-Pruning's tracer fails inside its index mappings on some layouts (channel
            # shuffle in ShuffleNetV2, Swin's shifted windows; docs/zoo-sweep.md): name the model.
            raise ModelError(f"Torch-Pruning cannot trace the channel dependencies of {type(model).__name__} "
                             f"({type(error).__name__}: {error}); this architecture cannot be pruned structurally "
                             "here (see docs/zoo-sweep.md for the models known to fail)") from None
    return graph


def output_layer(model: nn.Module) -> nn.Module:
    """The layer producing the logits: the last Linear (or 1x1 Conv) registered."""
    candidates = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not candidates:
        raise UserError("model has no Conv2d or Linear layer to prune")
    return candidates[-1]


def all_groups(model: nn.Module, graph: tp.DependencyGraph) -> list[PrunableGroup]:
    """Every group with a Conv/Linear producer whose channels the classifier does not emit.

    Depthwise convs are never ignored: they sit in the expand conv's group, and ignoring
    them makes TP reject that group (the trap seed 003 2.4.2 describes).
    """
    names = {module: name for name, module in model.named_modules()}
    position = {module: index for index, module in enumerate(names)}
    head = output_layer(model)
    groups = []
    for group in graph.get_all_groups(ignored_layers=[head], root_module_types=[nn.Conv2d, nn.Linear]):
        producers, consumers, members = [], [], []
        for dep, _ in group:
            module, side = dep.target.module, handler_side(dep.handler)
            if module not in names or side is None:
                continue
            members.append((names[module], module, side))
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                if side == "out" and not (is_depthwise(module) and producers):
                    producers.append((names[module], module))
                elif side == "in" and not is_depthwise(module):
                    consumers.append((names[module], module))
        # The first registered dense producer is the primary one (the expand conv, not the
        # SE gate that multiplies the same channels): statistics are taken on its output.
        dense_producers = sorted(((n, m) for n, m in producers if not is_depthwise(m)),
                                 key=lambda item: position[item[1]])
        groups.append(PrunableGroup(group, dense_producers or producers, consumers, members))
    return groups


def _inside_linear(node) -> bool:
    """A node PyTorch runs inside a Linear applied to (N, ..., C) input, not a merge.

    F.linear on more than two dims is flatten (view) -> addmm (mm without bias) -> view;
    TP traces the first two as nodes of their own, so without this every transformer or
    ConvNeXt MLP looked merged ("Add" also matches "AddmmBackward0") and left "expand".
    """
    def feeds_linear(matmul) -> bool:
        grad_fn = getattr(matmul, "grad_fn", None)
        return (grad_fn is not None and grad_fn.name() in ("AddmmBackward0", "MmBackward0") and bool(matmul.outputs)
                and all(isinstance(o.module, nn.Linear) for o in matmul.outputs))

    if node.type.name == "RESHAPE":
        return bool(node.outputs) and all(feeds_linear(o) for o in node.outputs)
    return feeds_linear(node)


def _has_merge(group: PrunableGroup) -> bool:
    for dep, _ in group.group:
        node = dep.target
        if _inside_linear(node):
            continue
        if node.type.name in ("CONCAT", "SPLIT", "RESHAPE", "UNBIND", "EXPAND", "SLICE"):
            return True
        grad_fn = getattr(node, "grad_fn", None)
        if grad_fn is not None and node.type.name == "ELEMENTWISE" and any(k in grad_fn.name() for k in MERGE_OPS):
            return True
    return False


def _common_ancestor(names: list[str]) -> str:
    parts = [name.split(".") for name in names]
    common = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return ".".join(common)


def _inside_one_block(group: PrunableGroup, first_layer: str) -> bool:
    names = [n for n, _ in group.producers + group.consumers]
    ancestor = _common_ancestor(names)
    if not ancestor:
        return False
    return not (first_layer == ancestor or first_layer.startswith(ancestor + "."))


@SCOPES.register("all")
def every_group(model: nn.Module, groups: list[PrunableGroup]) -> list[PrunableGroup]:
    """Every prunable group of the model (residual streams, heads' inputs and all)."""
    return list(groups)


@SCOPES.register("expand")
def expand_groups(model: nn.Module, groups: list[PrunableGroup]) -> list[PrunableGroup]:
    """Intermediate dimension only: expand / bottleneck-inner channels of blocks (seed 000 MLP-only)."""
    head = output_layer(model)
    first_layer = next(n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    owner: dict[tuple[int, str], int] = {}
    for index, group in enumerate(groups):
        for _, module, side in group.members:
            owner.setdefault((id(module), side), index)
    merged = {index for index, group in enumerate(groups) if _has_merge(group)}
    chosen = []
    for index, group in enumerate(groups):
        if index in merged or not group.consumers or any(m is head for _, m in group.consumers):
            continue
        if not _inside_one_block(group, first_layer):
            continue
        sources = {owner.get((id(m), "in")) for _, m in group.producers}
        targets = {owner.get((id(m), "out")) for _, m in group.consumers}
        side_branch = len(sources) == 1 and sources == targets and None not in sources and not (sources & merged)
        if not side_branch:
            chosen.append(group)
    return chosen


def select_scope(model: nn.Module, graph: tp.DependencyGraph, scope: str,
                 include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> list[PrunableGroup]:
    """The groups of the registered ``scope``, adjusted by name patterns."""
    groups = all_groups(model, graph)
    chosen = SCOPES.get(scope, field="pruning.scope")(model, groups)

    def matches(group: PrunableGroup, patterns: tuple[str, ...]) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for name, _ in group.producers for p in patterns)

    chosen += [g for g in groups if g not in chosen and include and matches(g, include)]
    return [g for g in chosen if not (exclude and matches(g, exclude))]
