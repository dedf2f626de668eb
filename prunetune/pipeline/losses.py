"""Recovery losses: distillation (seed 001) and the regularisers of seed 003 1.4."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from prunetune.pruning.statistics import StatPoint, channel_axis


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
    """Seed 003 1.4.3: sum over hooked points of the entropy of p_c = var_c / sum_j var_j.

    ``points`` are the groups' ``stat_points``: each producer's output after its BN and
    activation, the variance VBP scores (a conv's raw output would be the wrong tensor: the
    BN after it divides any rescaling of its rows out). Hooks record the current batch's
    per-channel variance (over batch and spatial or token positions, channels on
    ``channel_axis``) in train mode; ``pop()`` returns the summed entropy and clears it.
    Minimising it concentrates variance in few channels, so the rest become expendable.
    """

    def __init__(self, points: dict[str, StatPoint]) -> None:
        self._entropies: list[torch.Tensor] = []
        self._hooks = [(module, _EntropyHook(self._entropies, activation)) for module, activation in points.values()]
        self._handles = [module.register_forward_hook(hook) for module, hook in self._hooks]

    def pop(self) -> torch.Tensor:
        total = torch.stack(self._entropies).sum() if self._entropies else torch.zeros(())
        self._entropies.clear()
        return total

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @contextmanager
    def detached(self):
        """The hooks off while the model is copied or saved: a copy would carry them, recording
        into its own list that nobody pops (the final fine-tuning's copy, a saved best.pt)."""
        attached = bool(self._handles)
        self.close()
        try:
            yield
        finally:
            if attached:
                self._handles = [module.register_forward_hook(hook) for module, hook in self._hooks]


class _EntropyHook:
    """The forward hook of one point (a class, not a closure: a saved model pickles its hooks)."""

    def __init__(self, entropies: list[torch.Tensor], activation: nn.Module | None) -> None:
        self.entropies, self.activation = entropies, activation

    def __call__(self, module: nn.Module, inputs, output: torch.Tensor) -> None:
        if not module.training:
            return
        # A copy: the model's next layer may be an in-place activation.
        values = output.float().clone()
        values = self.activation(values) if self.activation is not None else values
        axis = channel_axis(module, values)
        flat = values.movedim(axis, -1).reshape(-1, values.shape[axis])
        variance = flat.var(dim=0, unbiased=False)
        p = variance / variance.sum().clamp_min(1e-12)
        self.entropies.append(-(p * p.clamp_min(1e-12).log()).sum())
