"""Recovery losses: distillation (seed 001) and the regularisers of seed 003 1.4."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
                      alpha: float, temperature: float) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE(student, labels).

    The T^2 factor keeps the soft term's gradient scale independent of T (Hinton et al.).
    KL is averaged over the batch ("batchmean"), as the cross-entropy is.
    """
    student, teacher = student.float(), teacher.float()
    cross_entropy = F.cross_entropy(student, labels)
    if alpha == 0.0:
        return cross_entropy
    soft = F.kl_div(F.log_softmax(student / temperature, dim=1), F.log_softmax(teacher / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * temperature**2 * soft + (1.0 - alpha) * cross_entropy


def group_l21(layers: Iterable[nn.Module]) -> torch.Tensor:
    """Seed 003 1.4.2: sum over layers and output channels of ||w_i||_2 (w_i flattened)."""
    norms = [layer.weight.flatten(1).norm(dim=1).sum() for layer in layers]
    return torch.stack(norms).sum()


class VarianceEntropy:
    """Seed 003 1.4.3: sum over hooked layers of the entropy of p_c = var_c / sum_j var_j.

    Hooks record the current batch's per-channel variance (over batch and spatial or token
    positions) of each layer's output; ``pop()`` returns the summed entropy and clears it.
    Minimising it concentrates variance in few channels, so the rest become expendable.
    """

    def __init__(self, layers: dict[str, nn.Module]) -> None:
        self._entropies: list[torch.Tensor] = []
        self._handles = [layer.register_forward_hook(self._hook) for layer in layers.values()]

    def _hook(self, module, inputs, output) -> None:
        if not module.training:
            return
        values = output.float()
        channel_dim = 1 if values.ndim == 4 else values.ndim - 1
        flat = values.movedim(channel_dim, -1).reshape(-1, values.shape[channel_dim])
        variance = flat.var(dim=0, unbiased=False)
        p = variance / variance.sum().clamp_min(1e-12)
        self._entropies.append(-(p * p.clamp_min(1e-12).log()).sum())

    def pop(self) -> torch.Tensor:
        total = torch.stack(self._entropies).sum() if self._entropies else torch.zeros(())
        self._entropies = []
        return total

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
