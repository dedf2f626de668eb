"""Which channels may be pruned: the dependency graph's groups, filtered by scope.

A ``PrunableGroup`` is one Torch-Pruning group (coupled layers that must lose the same
channels) seen from its producers (layers whose output channels are cut) and consumers
(layers whose input channels are cut). Scopes:

- ``all``: every group with a Conv/Linear producer, except the outputs of the layers that
  emit the model's outputs (``output_layers``: classifier, auxiliary classifiers).
- ``expand``: the intermediate dimension only ("MLP-only", seed 000): channels produced
  and consumed inside one block, never reaching a residual merge, a concat or the head.
  Found from the graph, not per architecture: a group is intermediate when
  (1) no merge op (add/sub, concat, split, reshape) carries its channels,
  (2) no output layer consumes them,
  (3) its producers and consumers sit inside one block: their lowest common ancestor
      module is neither the model root nor a container of the model's first layer (so
      a stem feeding a block's depthwise conv is not "expand"), and
  (4) it is not a side branch that maps another non-merged group's channels back onto
      themselves (the squeeze dimension of squeeze-excitation).
  This gives the expand convs of inverted residuals with their depthwise conv, BN and SE
  layers, both inner convs of ResNet basic / bottleneck blocks, and fc1 of MLP blocks.

``include`` / ``exclude`` module-name patterns (fnmatch) override the scope per group: a
group is named by its producers.

The graph is traced on the training forward (``build_graph``), so auxiliary classifiers
that only run in training are in it; groups produced only there are in no scope. Attention
layouts (heads) live in ``attention.py``; a scope touching an attention prunetune cannot
re-split is refused before any work (``refuse_unsupported``). docs/pruning.md, "Model families".
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from prunetune.errors import ModelError, UserError
from prunetune.pruning.attention import head_blocks, heads_step, refuse_unsupported
from prunetune.registry import SCOPES
from prunetune.torch_tools import (evaluation_mode, forward_hooks, handler_side, is_depthwise,
                                   training_flags_restored)

MERGE_OPS = ("Add", "Sub", "Cat", "Split", "View", "Reshape", "Unsafe")


@dataclass(eq=False)
class PrunableGroup:
    """One prunable group: its TP group and the roles of its layers."""

    group: tp.dependency.Group
    producers: list[tuple[str, nn.Module]]
    consumers: list[tuple[str, nn.Module]]
    members: list[tuple[str, nn.Module, str]] = field(default_factory=list)  # (name, module, "in"/"out")
    # Equal blocks that must lose the same positions, besides grouped convs: timm's qkv
    # (3 * num_heads, attention.py) and GhostNet's [x, depthwise(x)] concat (2).
    blocks: int = 1
    feeds_output: bool = False  # an output layer (classifier, auxiliary classifier) reads these channels

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
        """G when a grouped conv (not depthwise), a GroupNorm or ``blocks`` split the channels into G blocks.

        TP's cut of such a layer assumes every block loses the same in-block positions
        (ConvPruner keeps the first 1/G of the kept input indices), as its own MetaPruner
        ensures; the selection must then remove whole positions across blocks.
        """
        counts = [m.groups for _, m, _ in self.members
                  if isinstance(m, nn.Conv2d) and m.groups > 1 and not is_depthwise(m)]
        counts += [m.num_groups for _, m, _ in self.members if isinstance(m, nn.GroupNorm)]
        # Removing one position in each of lcm(...) blocks removes it in every coarser block too.
        return math.lcm(self.blocks, *counts)

    @property
    def min_channels(self) -> int:
        """2 where a depthwise conv holds these channels: left with one, it is a plain conv to
        Torch-Pruning (groups == 1), its output leaves this group and the scope's count changes."""
        return 2 if any(is_depthwise(m) for _, m, _ in self.members) else 1

    @property
    def channel_step(self) -> int:
        """The count this group's channels must stay a multiple of (1 when free).

        nn.MultiheadAttention splits its embedding into ``num_heads`` equal heads and refuses
        an embed_dim they do not divide, so a group holding one (ViT's residual stream) is
        cut in multiples of its head count (``attention.py``).
        """
        return heads_step([m for _, m, _ in self.members])


class TracedGraph(tp.DependencyGraph):
    """TP's dependency graph of the training-mode forward, and the layers inference runs."""

    inference_layers: frozenset[nn.Module] | None = None  # None: unknown, every layer counts


def _training_forward(model: nn.Module, example_input: torch.Tensor):
    """TP's ``forward_fn``: the forward a training step runs, so that branches only training
    takes (GoogLeNet's and Inception v3's auxiliary classifiers) are traced and the channels
    they read are cut with the rest. Containers are in train mode, layers and every BatchNorm
    (timm's BatchNormAct2d has children) stay in eval (TP 1.6.1 calls ``model.eval()`` first):
    BatchNorm keeps its running statistics and works on a batch of one, Dropout and drop-path
    add no random ops."""
    for module in model.modules():
        container = next(module.children(), None) is not None
        module.training = container and not isinstance(module, nn.modules.batchnorm._BatchNorm)
    with torch.random.fork_rng(devices=[]):  # a functional dropout in a container draws from the CPU generator
        try:
            return model(example_input)
        except Exception as error:  # the model's own complaint, told apart from a tracer failure
            raise _ForwardFailed(error) from error


class _ForwardFailed(Exception):
    pass


@torch.no_grad()
def _inference_layers(model: nn.Module, example_input: torch.Tensor) -> frozenset[nn.Module]:
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    seen: set[nn.Module] = set()
    with forward_hooks((m, lambda module, i, o: seen.add(module)) for m in layers), evaluation_mode(model):
        model(example_input)
    return frozenset(seen)


def build_graph(model: nn.Module, example_input: torch.Tensor) -> TracedGraph:
    """Trace the training-mode forward; restore every module's train/eval flag (TP 1.6.1 leaves eval)."""
    with training_flags_restored(model):
        try:
            graph = TracedGraph().build_dependency(model, example_inputs=example_input, forward_fn=_training_forward)
        except _ForwardFailed as failed:
            error = failed.__cause__
            first_line = (str(error).strip().splitlines() or [""])[0]
            hint = (" or build it without them (model.kwargs: {aux_logits: false})"
                    if getattr(model, "aux_logits", False) is True else "")
            raise ModelError(f"model {type(model).__name__}: its train-mode forward fails on an input of shape "
                             f"{tuple(example_input.shape)} ({type(error).__name__}: {first_line}); prunetune traces the "
                             f"forward training runs, auxiliary heads included: use a larger data.image_size{hint}"
                             ) from None
        except (ZeroDivisionError, TypeError, IndexError, KeyError, ValueError) as error:
            # Torch-Pruning's tracer fails inside its index mappings on some layouts (channel
            # shuffle in ShuffleNetV2, Swin's shifted windows; docs/zoo-sweep.md): name the model.
            raise ModelError(f"Torch-Pruning cannot trace the channel dependencies of {type(model).__name__} "
                             f"({type(error).__name__}: {error}); this architecture cannot be pruned structurally "
                             "here (see docs/zoo-sweep.md for the models known to fail)") from None
    graph.inference_layers = _inference_layers(model, example_input)
    return graph


def output_layer(model: nn.Module) -> nn.Module:
    """The layer producing the logits: the last Linear (or 1x1 Conv) registered."""
    candidates = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not candidates:
        raise UserError("model has no Conv2d or Linear layer to prune")
    return candidates[-1]


def output_layers(model: nn.Module, graph: tp.DependencyGraph) -> list[nn.Module]:
    """The layers whose output channels are the model's outputs: ``output_layer`` and every
    Conv/Linear reached from an output of the traced graph without passing another one
    (GoogLeNet's auxiliary classifiers, LeViT's distillation head)."""
    found = [output_layer(model)]
    stack = [node for node in graph.module2node.values() if not node.outputs]
    seen = set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if isinstance(node.module, (nn.Conv2d, nn.Linear)):
            found += [] if node.module in found else [node.module]
        else:
            stack.extend(node.inputs)
    return found


def all_groups(model: nn.Module, graph: tp.DependencyGraph) -> list[PrunableGroup]:
    """Every group with a Conv/Linear producer whose channels no output layer emits.

    Depthwise convs are never ignored: they sit in the expand conv's group, and ignoring
    them makes TP reject that group (the trap seed 003 2.4.2 describes). Groups whose
    producers only run in training (inside auxiliary classifiers) are left out: they cost
    nothing at inference and have no eval-mode statistics; the channels those heads *read*
    are in the groups of their producers and are cut with them.
    """
    names = {module: name for name, module in model.named_modules()}
    position = {module: index for index, module in enumerate(names)}
    inference = getattr(graph, "inference_layers", None)
    blocks = head_blocks(model)
    outputs = output_layers(model, graph)
    groups = []
    for group in graph.get_all_groups(ignored_layers=outputs, root_module_types=[nn.Conv2d, nn.Linear]):
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
        if inference is not None and not any(m in inference for _, m in producers):
            continue
        folds = [blocks[m] for _, m, side in members if side == "out" and m in blocks] + [_ghost_fold(group, members)]
        groups.append(PrunableGroup(group, dense_producers or producers, consumers, members, math.lcm(*folds),
                                    any(m in outputs for _, m in consumers)))
    return groups


def _ghost_fold(group: tp.dependency.Group, members: list[tuple[str, nn.Module, str]]) -> int:
    """2 where the channels are a concat [x, depthwise(x)] (GhostNet's ghost module), else 1.

    Channel i of x and channel i of depthwise(x) are one unit: TP reaches them by two paths
    (through the concat and through the depthwise conv) and rejects a cut holding only one.
    """
    channels = len(group[0].idxs)
    concat = any(dep.target.type.name == "CONCAT" for dep, _ in group)
    for _, module, side in members:
        if concat and side == "out" and is_depthwise(module) and 2 * module.out_channels == channels:
            return 2
    return 1


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


def _around_batchnorm1d(node) -> bool:
    """A reshape that only folds tokens into the batch for a BatchNorm1d, channels kept last.

    timm's LeViT normalises every Linear's output so: ``bn(x.flatten(0, 1)).reshape_as(x)``.
    """
    def normalised_width(neighbour) -> int | None:
        # Shapes from the trace (grad_fn's saved tensors), not the modules: they stay valid after cuts.
        saved = getattr(getattr(neighbour, "grad_fn", None), "_saved_input", None)
        return saved.shape[-1] if isinstance(neighbour.module, nn.BatchNorm1d) and saved is not None else None

    sizes = getattr(getattr(node, "grad_fn", None), "_saved_self_sym_sizes", None)
    if node.type.name != "RESHAPE" or not sizes:
        return False
    return any(normalised_width(n) == sizes[-1] for n in node.inputs + node.outputs)


def _has_merge(group: PrunableGroup) -> bool:
    for dep, _ in group.group:
        node = dep.target
        if _inside_linear(node) or _around_batchnorm1d(node):
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
    first_layer = next(n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    owner: dict[tuple[int, str], int] = {}
    for index, group in enumerate(groups):
        for _, module, side in group.members:
            owner.setdefault((id(module), side), index)
    merged = {index for index, group in enumerate(groups) if _has_merge(group)}
    chosen = []
    for index, group in enumerate(groups):
        if index in merged or not group.consumers or group.feeds_output:
            continue
        if not _inside_one_block(group, first_layer):
            continue
        sources = {owner.get((id(m), "in")) for _, m in group.producers}
        targets = {owner.get((id(m), "out")) for _, m in group.consumers}
        side_branch = len(sources) == 1 and sources == targets and None not in sources and not (sources & merged)
        if not side_branch:
            chosen.append(group)
    return chosen


def matching_pattern(group: PrunableGroup, patterns: tuple[str, ...]) -> str | None:
    """The first of ``patterns`` naming one of the group's producers, or None."""
    return next((p for p in patterns for name, _ in group.producers if fnmatch.fnmatchcase(name, p)), None)


def select_scope(model: nn.Module, graph: tp.DependencyGraph, scope: str,
                 include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> list[PrunableGroup]:
    """The groups of the registered ``scope``, adjusted by name patterns."""
    groups = all_groups(model, graph)
    chosen = SCOPES.get(scope, field="pruning.scope")(model, groups)
    chosen += [g for g in groups if g not in chosen and matching_pattern(g, include)]
    chosen = [g for g in chosen if not matching_pattern(g, exclude)]
    refuse_unsupported(model, chosen, scope)
    return chosen
