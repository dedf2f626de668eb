"""Attention layouts the cut must respect: which channels form heads, and the ints to update after.

Torch-Pruning cuts tensors; attention modules also split their projections into heads and
keep plain ints that ``forward()`` reads. Three cases:

- ``nn.MultiheadAttention`` (torchvision's ViT): the embedding is split into ``num_heads``
  equal heads in ``forward`` and must stay a multiple of them, so a group holding one (the
  residual stream) is cut in multiples of its head count (``heads_step``); torchvision's
  ``VisionTransformer.hidden_dim`` follows the patch projection after the cut.
- timm's ``Attention`` (ViT, DeiT, MobileViT, ...): ``qkv = Linear(dim, 3 * num_heads *
  head_dim)`` is reshaped to (3, heads, head_dim). Its output group is cut as
  ``3 * num_heads`` blocks that lose the same in-head positions, so q, k and v of every head
  keep one common ``head_dim`` and the head count stays (Torch-Pruning's ``prune_head_dims``
  in its examples/transformers/prune_timm_vit.py); afterwards ``head_dim``, ``attn_dim`` and
  ``scale`` follow ``qkv``. ``scale`` becomes ``head_dim ** -0.5`` of the new width, the
  value the fused kernel (``F.scaled_dot_product_attention``, timm's default) uses anyway,
  so the fused and the plain path compute the same function after the cut.
- any other module with an int ``num_heads`` that owns its projections (LeViT's and
  EfficientFormer's attention: per-head q/k/v of different widths, attention biases,
  subsampling views Torch-Pruning 1.6.1 cannot follow; timm's ``Attention`` with q/k
  norms or a gate): ``unsupported_attention`` names it, and a scope touching its layers is
  refused before any work (``refuse_unsupported``).
"""

from __future__ import annotations

import math

from torch import nn
from torchvision.models import VisionTransformer

from prunetune.errors import ModelError


def _int(module: nn.Module, attribute: str) -> int | None:
    value = getattr(module, attribute, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def qkv_heads(module: nn.Module) -> int | None:
    """``num_heads`` of a timm-style attention whose fused qkv projection we can cut, else None."""
    heads, head_dim, qkv = _int(module, "num_heads"), _int(module, "head_dim"), getattr(module, "qkv", None)
    if heads is None or head_dim is None or not isinstance(qkv, nn.Linear):
        return None
    if qkv.out_features != 3 * heads * head_dim:
        return None
    plain = all(isinstance(getattr(module, norm, None), (nn.Identity, type(None))) for norm in ("q_norm", "k_norm"))
    return heads if plain and getattr(module, "gate", None) is None else None


def _recognised(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or qkv_heads(module) is not None


def head_blocks(model: nn.Module) -> dict[nn.Module, int]:
    """qkv layer -> the number of equal blocks (3 * num_heads) its output channels form."""
    return {module.qkv: 3 * heads for module in model.modules() if (heads := qkv_heads(module)) is not None}


def heads_step(modules: list[nn.Module]) -> int:
    """The count a group holding these modules must keep its channels a multiple of."""
    return math.lcm(1, *(m.num_heads for m in modules if isinstance(m, nn.MultiheadAttention)))


def unsupported_attention(model: nn.Module) -> dict[str, nn.Module]:
    """Name -> attention module whose head layout prunetune cannot cut (module docstring)."""
    found = {}
    for name, module in model.named_modules():
        if _int(module, "num_heads") is None or _recognised(module):
            continue
        inside = list(module.modules())
        if any(_recognised(m) for m in inside):
            continue  # a block holding a known attention (torchvision's EncoderBlock)
        if any(isinstance(m, (nn.Linear, nn.Conv2d)) for m in inside):
            found[name] = module
    return found


def sync_head_widths(model: nn.Module) -> None:
    """Update the plain-int widths that ``forward()`` reads and Torch-Pruning cannot see."""
    for module in model.modules():
        if isinstance(module, VisionTransformer):
            # torchvision reshapes its patch embedding with self.hidden_dim.
            module.hidden_dim = module.conv_proj.out_channels
        heads, head_dim, qkv = _int(module, "num_heads"), _int(module, "head_dim"), getattr(module, "qkv", None)
        if heads is None or head_dim is None or not isinstance(qkv, nn.Linear) or qkv.out_features % (3 * heads):
            continue
        new_dim = qkv.out_features // (3 * heads)
        if new_dim != head_dim:
            module.head_dim = new_dim
            module.scale = new_dim**-0.5
            if _int(module, "attn_dim") is not None:
                module.attn_dim = heads * new_dim


def refuse_unsupported(model: nn.Module, groups: list, scope: str) -> None:
    """Raise ``ModelError`` if a group would cut layers of an attention prunetune cannot re-split.

    ``groups`` are ``scope.PrunableGroup``s. Such a cut either is rejected by Torch-Pruning or
    leaves a forward that fails (LeViT, EfficientFormer); refusing here, as the scope is
    chosen, comes before statistics or any cut.
    """
    attention = unsupported_attention(model)
    if not attention:
        return

    def owner(layer: str) -> str | None:
        return next((name for name in attention if layer == name or layer.startswith(name + ".")), None)

    hits = [(group.name, owner(name)) for group in groups for name, _, _ in group.members if owner(name)]
    if not hits:
        return
    refused = list(dict.fromkeys(name for name, _ in hits))
    kinds = sorted({type(attention[where]).__name__ for _, where in hits})
    listed = ", ".join(refused)
    raise ModelError(
        f"model {type(model).__name__}: scope {scope!r} cuts layers inside its {'/'.join(kinds)} modules (e.g. "
        f"{hits[0][1]}), whose head layout prunetune cannot re-split and Torch-Pruning 1.6.1 cannot cut; "
        f"choose pruning.scope 'expand' or exclude these groups with pruning.exclude: [{listed}]")
