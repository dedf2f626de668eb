"""Top-K spatial kernel pruning (TKP, seed 002) and N:M sparsity of Linear layers: layers, masks, cost.

**Layers** (``select_kernel_layers``, the ``tkp`` config section). With ``tkp.topk`` = K,
every Conv2d that runs in the eval forward and has more than K positions per kernel
(k x k > K; depthwise convs unless ``tkp.depthwise`` is off); with ``tkp.nm`` = N:M, every
Linear that runs in it. The model's output layer (the classifier) is left out, as the
channel scopes leave its outputs; ``tkp.include`` patterns add layers left out by default
(the classifier, depthwise convs) and ``tkp.exclude`` patterns remove layers, with the
channel scopes' fnmatch rule on module names. Layers that never run their own forward
(the ``out_proj`` of ``nn.MultiheadAttention``, auxiliary classifiers) are never chosen:
their cost is unknown to the MAC counter.

**Masks**: a *group* is one k x k kernel (one output / input channel pair) of a TKP conv,
or M consecutive input weights of one output row of an N:M Linear; the mask keeps the
``keep`` (K, or N) largest magnitudes of each group, exactly that many (ties: torch.topk's
choice), so every kernel has exactly K non-zeros and every group of M exactly N.

**Masked training** (``KernelMasks.attach``, stage 2): the weight becomes
``original * mask`` (a torch parametrization), so the forward sees zeros and the backward
gives the masked positions a zero gradient; ``original`` is zeroed there too. With a zero
gradient and a zero value, SGD's momentum, Adam's moments and (decoupled) weight decay all
leave it at exactly zero. ``bake`` removes the parametrization: a plain module with its
zeros in the weights, which is what is saved and exported.

**Effective MACs**: the multiply-adds with a non-zero weight, i.e. the dense count
(Torch-Pruning's counter on the model) minus, for every masked weight, the number of times
it is used on one image (output positions of a conv, tokens of a Linear). K / (k x k) of a
TKP conv's, N / M of an N:M Linear's. Theoretical: a dense kernel does the same work.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from prunetune.errors import UserError
from prunetune.pruning.scope import matches_any, output_layer
from prunetune.torch_tools import evaluation_mode, forward_hooks, is_depthwise

METADATA_KEY = "tkp"  # the key of a saved or exported model's metadata that holds its masks


@dataclass(eq=False)
class KernelLayer:
    name: str
    module: nn.Module
    keep: int  # K of top-K, N of N:M
    group_size: int  # k x k, M
    uses: int  # multiplications per weight for one image: output positions (conv), tokens (Linear)

    @property
    def pattern(self) -> str:
        if isinstance(self.module, nn.Conv2d):
            height, width = self.module.kernel_size
            return f"top-{self.keep} of {height}x{width}"
        return f"{self.keep}:{self.group_size}"

    def groups(self) -> torch.Tensor:
        """The weight as it is used (masked once attached), one group per row."""
        return self.module.weight.reshape(-1, self.group_size)


@torch.no_grad()
def weight_uses(model: nn.Module, example: torch.Tensor) -> dict[nn.Module, int]:
    """Conv2d / Linear -> times each of its weights is multiplied for one input of ``example``."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    uses: dict[nn.Module, int] = {}

    def count(module, inputs, output) -> None:
        width = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        uses[module] = uses.get(module, 0) + output.numel() // (output.shape[0] * width)

    with forward_hooks((m, count) for m in layers), evaluation_mode(model):
        model(example)
    return uses


def select_kernel_layers(model: nn.Module, tkp, example: torch.Tensor) -> list[KernelLayer]:
    """The TKP convs and N:M Linear layers of ``model`` under the ``tkp`` section (rules above)."""
    names = {module: name for name, module in model.named_modules()}
    output = output_layer(model)
    nm = tkp.nm_pair
    chosen = []
    for module, uses in weight_uses(model, example).items():
        name = names[module]
        if isinstance(module, nn.Conv2d):
            positions = module.kernel_size[0] * module.kernel_size[1]
            if tkp.topk is None or positions <= tkp.topk:
                continue
            default = tkp.depthwise or not is_depthwise(module)
            keep, group_size = tkp.topk, positions
        elif nm is not None:
            default, (keep, group_size) = True, nm
        else:
            continue
        default = default and module is not output
        if (default or matches_any([name], tkp.include)) and not matches_any([name], tkp.exclude):
            if isinstance(module, nn.Linear) and module.in_features % group_size:
                raise UserError(f"tkp.nm {tkp.nm}: Linear {name} has {module.in_features} input features, not a "
                                f"multiple of {group_size}; exclude it (tkp.exclude) or keep its inputs a multiple "
                                f"(pruning.round_to: {group_size})")
            chosen.append(KernelLayer(name, module, keep, group_size, uses))
    if not chosen:
        raise UserError(f"tkp: no layer of {type(model).__name__} to prune with topk {tkp.topk} / nm {tkp.nm}: "
                        f"{_candidates(model, names)}; check tkp.topk, tkp.depthwise, tkp.include / tkp.exclude")
    return chosen


def _candidates(model: nn.Module, names: dict[nn.Module, str]) -> str:
    convs = [f"{names[m]} ({m.kernel_size[0]}x{m.kernel_size[1]}{', depthwise' if is_depthwise(m) else ''})"
             for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    linears = [names[m] for m in model.modules() if isinstance(m, nn.Linear)]
    return (f"convs larger than 1x1: {', '.join(convs[:8]) or 'none'}{' ...' if len(convs) > 8 else ''}; "
            f"Linear layers: {', '.join(linears[:8]) or 'none'} (the last is the output layer)")


def top_k_mask(groups: torch.Tensor, keep: int) -> torch.Tensor:
    """True at the ``keep`` largest magnitudes of each row of ``groups``: exactly ``keep`` per row."""
    index = groups.abs().topk(keep, dim=1).indices
    return torch.zeros(groups.shape, dtype=torch.bool, device=groups.device).scatter_(1, index, True)


class MaskedWeight(nn.Module):
    """weight -> weight * mask: masked positions are zero forward and get no gradient backward."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


class KernelMasks:
    """The hard masks of one model's TKP layers: name -> bool tensor shaped like the weight."""

    def __init__(self, layers: list[KernelLayer]) -> None:
        self.layers = layers
        self.masks: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def compute(self) -> None:
        """Top-K (or N of M) by the current magnitudes."""
        self.masks = {layer.name: top_k_mask(layer.groups().detach(), layer.keep).reshape(layer.module.weight.shape)
                      for layer in self.layers}

    @torch.no_grad()
    def zero(self) -> None:
        """Zero the masked weights in place (no parametrization)."""
        for layer in self.layers:
            layer.module.weight.mul_(self.masks[layer.name])

    def attach(self) -> None:
        """Train with the masks on forward and backward (a parametrization); masked weights zeroed."""
        self.zero()
        for layer in self.layers:
            weight = layer.module.weight
            mask = torch.empty_like(weight).copy_(self.masks[layer.name])  # the weight's dtype and memory layout
            parametrize.register_parametrization(layer.module, "weight", MaskedWeight(mask))

    def masked_weights(self) -> int:
        return sum(int((~mask).sum()) for mask in self.masks.values())

    def effective_macs(self, dense_macs: int) -> int:
        """``dense_macs`` (of the model these layers belong to) less the products with a masked weight."""
        return dense_macs - sum(int((~self.masks[layer.name]).sum()) * layer.uses for layer in self.layers)

    def metadata(self, effective_macs: int) -> dict[str, Any]:
        """What a saved model carries (JSON-friendly): each layer's pattern and mask, the effective MACs."""
        layers = {layer.name: {"pattern": layer.pattern, "shape": list(self.masks[layer.name].shape),
                               "mask": pack_mask(self.masks[layer.name])} for layer in self.layers}
        return {METADATA_KEY: {"effective_macs": int(effective_macs), "effective_macs_are": "theoretical",
                               "mask_format": "numpy packbits of the flattened bool mask, base64", "layers": layers}}


def bake(model: nn.Module) -> nn.Module:
    """Remove every mask parametrization of ``model`` in place, leaving the masked weights: a plain module."""
    for module in list(model.modules()):
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
    return model


def pack_mask(mask: torch.Tensor) -> str:
    return base64.b64encode(np.packbits(mask.detach().cpu().numpy().reshape(-1)).tobytes()).decode("ascii")


def masks_from_metadata(metadata: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Layer name -> bool mask, from the metadata of a saved or exported TKP model ({} for any other)."""
    layers = metadata.get(METADATA_KEY, {}).get("layers", {})
    masks = {}
    for name, entry in layers.items():
        count = int(np.prod(entry["shape"]))
        bits = np.unpackbits(np.frombuffer(base64.b64decode(entry["mask"]), dtype=np.uint8))[:count]
        masks[name] = torch.from_numpy(bits.astype(bool)).reshape(entry["shape"])
    return masks


def carried_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The TKP part of a saved model's metadata, for a file written from it (export); {} without TKP."""
    return {METADATA_KEY: metadata[METADATA_KEY]} if METADATA_KEY in metadata else {}
