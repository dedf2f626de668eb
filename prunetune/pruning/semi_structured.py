"""2:4 Linear layers on CUDA's sparse tensor cores: ``torch.sparse.to_sparse_semi_structured``.

A 2:4 model from the TKP stage (``tkp.nm: '2:4'``) is saved and exported dense, with its
zeros in the weights: the file loads anywhere, on CPU too. Where a CUDA GPU with sparse tensor
cores (compute capability 8.0+) runs it, ``semi_structured(model)`` replaces every Linear
weight that holds the 2:4 pattern exactly (at most 2 non-zeros in every 4 consecutive
inputs) by torch's semi-structured sparse tensor, in place, for inference. torch decides
which shapes and dtypes it takes (fp16 / bf16 weights, sizes multiples of 32 / 64 in
torch 2.11); a layer it refuses keeps its dense weight and is listed in ``skipped`` with
torch's reason, never silently. Not measured here: the machine this was written on has no GPU
(docs/pruning.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from prunetune.errors import UserError


@dataclass
class SemiStructured:
    converted: list[str] = field(default_factory=list)  # layers now running on the sparse kernel
    skipped: dict[str, str] = field(default_factory=dict)  # 2:4 layers torch refused, with its reason


def holds_two_four(weight: torch.Tensor) -> bool:
    """At most 2 non-zeros in every 4 consecutive input weights of each row."""
    if weight.ndim != 2 or weight.shape[1] % 4:
        return False
    return bool(((weight != 0).reshape(-1, 4).sum(dim=1) <= 2).all())


@torch.no_grad()
def semi_structured(model: nn.Module) -> SemiStructured:
    """Put every exactly-2:4 Linear weight of ``model`` (on CUDA) into semi-structured sparse form."""
    if not torch.cuda.is_available():
        raise UserError("semi-structured 2:4 weights need a CUDA GPU (compute capability 8.0+); none is available")
    from torch.sparse import to_sparse_semi_structured

    outcome = SemiStructured()
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or not module.weight.is_cuda or not holds_two_four(module.weight):
            continue
        try:
            sparse = to_sparse_semi_structured(module.weight.detach())
        except (RuntimeError, ValueError, NotImplementedError) as error:
            outcome.skipped[name] = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            continue
        module.weight = nn.Parameter(sparse, requires_grad=False)
        outcome.converted.append(name)
    return outcome
