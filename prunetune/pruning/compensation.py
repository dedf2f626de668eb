"""Bias compensation (seed 003 1.5.1), for any criterion.

A consumer computing y_i = sum_j W_ij x_j + b_i loses sum_{j in P} W_ij x_j when the
channels P are cut. Its expected value is folded into the consumer before the cut:
into the bias when there is one, otherwise into the running mean of the BatchNorm that
normalises the consumer's output (subtracting it there is the same correction), and if
neither exists a bias is added.

Under a repair that recalibrates BN (``bn``, ``layerwise``, ``asr``: ``Repair.recalibrates``)
the fold is exactly redundant for a consumer whose output a BatchNorm normalises: the
reset discards a running-mean fold, and the re-estimated mean E[y_pruned] absorbs any
constant shift of the BN's input, so the repaired model is the same with or without it
(a fold into beta instead would shift the recalibrated output away from the dense one).
Those consumers are skipped there, as are those followed by a BN without running
statistics (it always normalises with batch statistics). What stays is the consumers no
BN normalises: squeeze-excitation convs, a Linear head or MLP layer. Where no consumer of
the scope is left, ``check_compensation`` refuses ``compensation: true``.

The means are those of the consumer's *input* (``collect_input_means``), i.e. of the
signal that reaches it through any depthwise conv, BN, activation or SE gate. For a conv
consumer they are kept per position and the lost term is computed by convolving the
mean map with the pruned weights (same stride, padding, dilation): zero padding makes
border positions lose less than interior ones, and the bias then carries the exact
position-average of the lost term, so the consumer's mean output over the calibration
data is preserved exactly, not only approximately. Grouped convs other than the
depthwise ones inside a group, and Linear layers fed a flattened map (input size !=
channel count), are left uncompensated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunetune.errors import UserError
from prunetune.torch_tools import handler_side, plain_indices

BatchNorm = nn.modules.batchnorm._BatchNorm


def redundant(consumer: nn.Module, batchnorm_after: dict[nn.Module, BatchNorm], recalibrated: bool) -> bool:
    """Whether compensating ``consumer`` cannot change the repaired model (module docstring)."""
    norm = batchnorm_after.get(consumer)
    return norm is not None and (recalibrated or norm.running_mean is None)


def check_compensation(consumers: dict[str, nn.Module], batchnorm_after: dict[nn.Module, BatchNorm], repair: str,
                       recalibrated: bool) -> None:
    """Refuse ``pruning.compensation: true`` where it would change nothing in this model."""
    if consumers and all(redundant(module, batchnorm_after, recalibrated) for module in consumers.values()):
        names = ", ".join(list(consumers)[:3]) + (", ..." if len(consumers) > 3 else "")
        raise UserError(f"pruning.compensation: true changes nothing here: every layer reading the pruned channels "
                        f"({names}) is normalised by a BatchNorm whose statistics pruning.repair {repair!r} "
                        f"re-estimates; set pruning.compensation false, or pruning.repair none (docs/pruning.md)")


def lost_contribution(consumer: nn.Module, mean: torch.Tensor, pruned: list[int]) -> torch.Tensor | None:
    """Expected output lost by ``consumer`` per output channel when its inputs ``pruned`` go."""
    weight = consumer.weight.detach()
    index = torch.as_tensor(pruned, device=weight.device)
    mean = mean.to(weight.device, weight.dtype)
    if isinstance(consumer, nn.Conv2d):
        if consumer.groups != 1 or mean.ndim != 3 or mean.shape[0] != consumer.in_channels:
            return None
        lost = F.conv2d(mean[index].unsqueeze(0), weight[:, index], None, consumer.stride, consumer.padding,
                        consumer.dilation)
        return lost.mean((0, 2, 3))
    if isinstance(consumer, nn.Linear):
        if mean.ndim != 1 or mean.shape[0] != consumer.in_features:
            return None
        return weight[:, index] @ mean[index]
    return None


@torch.no_grad()
def compensate(group, means: dict[nn.Module, torch.Tensor], batchnorm_after: dict[nn.Module, BatchNorm],
               recalibrated: bool = False) -> int:
    """Fold the lost contributions of a Torch-Pruning pruning ``group`` into its consumers.

    Call before ``group.prune()``: the weights of the pruned inputs are still there. The
    group's own per-layer indices are used, so index remapping across the graph is TP's.
    ``recalibrated``: the repair that follows re-estimates the BN statistics, so consumers a
    BN normalises are skipped (``redundant``). Returns the number of consumers changed.
    """
    done = 0
    for dep, idxs in group:
        consumer = dep.target.module
        if handler_side(dep.handler) != "in" or consumer not in means:
            continue
        if redundant(consumer, batchnorm_after, recalibrated):
            continue
        lost = lost_contribution(consumer, means[consumer], plain_indices(idxs))
        if lost is None:
            continue
        if consumer.bias is not None:
            consumer.bias.add_(lost.to(consumer.bias.dtype))
        elif consumer in batchnorm_after:
            norm = batchnorm_after[consumer]
            norm.running_mean.sub_(lost.to(norm.running_mean.dtype))
        else:
            consumer.bias = nn.Parameter(lost.clone())
        done += 1
    return done
