"""TKP's stage-1 regularisers (seed 002): a penalty on the coefficients beyond each group's top K.

A *group* is one k x k kernel of a TKP conv (one output / input channel pair; K =
``tkp.topk`` positions are kept) or M consecutive input weights of one output row of an N:M
Linear (K = N are kept). Sorted by magnitude, |w|_(1) >= ... >= |w|_(n), the *tail* is ranks
K+1..n: exactly what the hard mask of stage 2 will zero. The auxiliary loss is the mean,
over every group of every TKP layer, of

    sum_{j=0}^{n-K-1}  c_j * |w|_(K+1+j)^2

with ``c_j = exp(-alpha * j)`` (``exponential``) or ``c_j = 1`` (``l2``); ``none`` adds
nothing. Seed 002 says only "penalizes coefficients beyond top-K with exponentially decaying
weights" and calls l2 "more uniform across positions": the weights decay with the rank
*beyond K*, so the first coefficient outside the kept set (the one that decides the mask's
error and whether the top-K set is stable) is penalised most, and alpha -> 0 gives l2
exactly. The rank offset j is not divided by the tail length, so alpha means the same on a
3x3 kernel (tail 9 - K), a 5x5 one and a 2:4 group (tail 2). docs/pruning.md, "Top-K kernel
pruning", has the reasoning and a worked kernel. The mean over groups keeps ``tkp.beta``
independent of the model's size. The sort decides the ranks; the gradient flows through
the sorted values, so only the tail coefficients are pushed (towards zero).

A regulariser is a ``TailPenalty`` registered by name; ``parameters`` says which ``tkp``
fields it reads, so the config refuses a setting the chosen one ignores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from prunetune.registry import TKP_REGULARISERS


@dataclass(frozen=True)
class TailPenalty:
    description: str
    parameters: tuple[str, ...]  # the tkp fields it reads (beta, alpha); the config refuses the others when set
    weights: Callable[[int, float], torch.Tensor] | None  # (tail length, alpha) -> c_j; None adds no loss

    @property
    def penalises(self) -> bool:
        return self.weights is not None


def exponential_weights(tail: int, alpha: float) -> torch.Tensor:
    return torch.exp(-alpha * torch.arange(tail, dtype=torch.float64)).float()


def uniform_weights(tail: int, alpha: float) -> torch.Tensor:
    return torch.ones(tail)


TKP_REGULARISERS.register("exponential")(TailPenalty(
    "beta * mean over kernels of sum_j exp(-alpha j) |w|_(K+1+j)^2: the first coefficient beyond the top K "
    "penalised most (seed 002, recommended)", ("beta", "alpha"), exponential_weights))
TKP_REGULARISERS.register("l2")(TailPenalty(
    "beta * mean over kernels of the squared coefficients beyond the top K, all weighted alike", ("beta",),
    uniform_weights))
TKP_REGULARISERS.register("none")(TailPenalty(
    "no auxiliary loss: stage 1 (if any) trains on the task loss alone, then the hard mask", (), None))


class GroupedLayer(Protocol):
    """What the loss reads of a TKP layer (``kernel_topk.KernelLayer``)."""

    keep: int

    def groups(self) -> torch.Tensor: ...  # (groups, n): the layer's weight, one group per row


def tail_loss(layers: Sequence[GroupedLayer], penalty: TailPenalty, alpha: float) -> torch.Tensor:
    """The auxiliary loss above (without beta); 0 for a penalty that adds none."""
    if not penalty.penalises or not layers:
        return torch.zeros(())
    total, groups = None, 0
    for layer in layers:
        squares = layer.groups().float().pow(2)
        tail = squares.sort(dim=1, descending=True).values[:, layer.keep:]
        weighted = (tail * penalty.weights(tail.shape[1], alpha).to(tail.device)).sum()
        total = weighted if total is None else total + weighted
        groups += tail.shape[0]
    return total / groups


def get_penalty(name: str) -> TailPenalty:
    return TKP_REGULARISERS.get(name, field="tkp.reg_type")
