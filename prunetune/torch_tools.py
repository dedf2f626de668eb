"""Torch boilerplate shared by pruning, models and training: modes, hook lifetimes, layer kinds.

Also the two readings of Torch-Pruning's dependency objects that several modules need (which
side of a layer a handler cuts, plain ints from its indices); they only read attributes, so
this module imports torch alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from torch import nn
from torch.utils.hooks import RemovableHandle


@contextmanager
def training_flags_restored(model: nn.Module) -> Iterator[nn.Module]:
    """Put back every module's train/eval flag on exit, also when the body raises.

    ``model.train(flag)`` first, so a model overriding ``train()`` (to keep its norms
    frozen, say) sees the call it always saw; then per module, because that call alone
    would also switch a submodule that was deliberately left in the other mode.
    """
    was_training = model.training
    flags = [(module, module.training) for module in model.modules()]
    try:
        yield model
    finally:
        model.train(was_training)
        for module, training in flags:
            if module.training != training:
                module.training = training


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` for the body, then each module's previous train/eval flag."""
    with training_flags_restored(model):
        model.eval()
        yield model


ForwardHook = Callable[..., object]


@contextmanager
def forward_hooks(hooks: Iterable[tuple[nn.Module, ForwardHook]],
                  pre_hooks: Iterable[tuple[nn.Module, ForwardHook]] = ()) -> Iterator[list[RemovableHandle]]:
    """Register each (module, hook) as a forward hook and each of ``pre_hooks`` as a forward
    pre-hook; yield the handles and remove all of them on exit, also when the body (or a later
    registration) raises, so a failed pass leaves no hook behind to fire on the next one."""
    handles: list[RemovableHandle] = []
    try:
        for module, hook in hooks:
            handles.append(module.register_forward_hook(hook))
        for module, hook in pre_hooks:
            handles.append(module.register_forward_pre_hook(hook))
        yield handles
    finally:
        for handle in handles:
            handle.remove()


def is_depthwise(module: nn.Module) -> bool:
    """A Conv2d with one group per input channel (its in and out channels are the same ones)."""
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


def handler_side(handler) -> str | None:
    """"out" or "in": which channels of its layer a Torch-Pruning handler cuts; None for neither.

    TP's handlers are bound methods named ``prune_out_channels`` / ``prune_in_channels``; a
    handler without a name is read by its type's name.
    """
    name = getattr(handler, "__name__", "") or type(handler).__name__
    if "out_channels" in name:
        return "out"
    if "in_channels" in name:
        return "in"
    return None


def plain_indices(idxs) -> list[int]:
    """Ints from TP's per-layer indices (``_HybridIndex`` objects or plain ints)."""
    return [int(getattr(i, "idx", i)) for i in idxs]
