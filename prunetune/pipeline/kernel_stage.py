"""The TKP stage (seed 002's two-stage training), one more row after the channel schedule.

It prunes the model the run would keep: the last feasible row's (the final fine-tuning's
when it stayed feasible), or the unpruned model when the schedule makes no channel step
(``pruning.schedule.kind: none``); after a schedule with no feasible step there is none.
Its row has ``phase`` "tkp", ``step`` the last row's + 1, the target and channel sparsity of
the model it started from, dense ``macs`` and theoretical ``effective_macs``; it is feasible
by the same threshold and competes for the best step like any row.

**Stage 1** (``tkp.stage1_epochs``): dense training with L = L_task + beta * L_aux, L_task the
recovery loss (distillation from the teacher included), L_aux the ``tkp.reg_type`` penalty
on the coefficients beyond each kernel's top K (``pruning/kernel_penalty.py``). An epoch is
judged by the accuracy its *hard masks* would leave (masks from that epoch's weights, BN
recalibrated, on a snapshot that is then restored): the dense accuracy says nothing about
what the mask keeps, and the regulariser lowers it by design. The model stage 1 started
from is the epoch-0 candidate, so as in recovery the stage never hands on a worse start.

**Stage 2** (``tkp.stage2_epochs``): the top-K / N:M masks of the stage-1 weights, attached
to forward and backward (``KernelMasks.attach``); BN recalibrated (the row's
``pre_accuracy``), then recovery's loop with distillation only, ``recovery.patience`` and
BN recalibration after each epoch when ``recovery.recalibrate_bn``, at ``tkp.stage2_lr`` (by
default the recovery rate of the step it starts from; stage 1 has its own, ``tkp.stage1_lr``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from prunetune.models.complexity import measure
from prunetune.pipeline.recovery import make_loss, recover, recovery_lr
from prunetune.pipeline.rows import StepRow
from prunetune.pruning.kernel_penalty import get_penalty, tail_loss
from prunetune.pruning.kernel_topk import KernelMasks, bake, select_kernel_layers
from prunetune.training import evaluate, recalibrate_batchnorm

if TYPE_CHECKING:
    from prunetune.pipeline.run import PreparedRun

PHASE = "tkp"


@dataclass
class TkpSource:
    """The model the TKP stage starts from, and the schedule position it came from."""

    model: nn.Module
    target_sparsity: float
    sparsity: float


@dataclass
class TkpOutcome:
    row: StepRow
    model: nn.Module  # baked: a plain module with the zeros in its weights
    metadata: dict  # masks and effective MACs, for the saved model (kernel_topk.KernelMasks.metadata)


def tkp_source(run: PreparedRun) -> TkpSource | None:
    """The last feasible model (rows so far), the unpruned student without channel steps, else None."""
    if run.last_feasible is not None:
        model, row = run.last_feasible
        return TkpSource(model, row.target_sparsity, row.sparsity)
    if not run.targets:
        return TkpSource(run.student, 0.0, 0.0)
    return None


def tkp_stage(run: PreparedRun, source: TkpSource, on_epoch=None) -> TkpOutcome:
    config, clock, tkp, recovery = run.config, run.clock, run.config.tkp, run.config.recovery
    runtime, loaders = run.baseline.runtime, run.baseline.loaders
    model = runtime.prepare(copy.deepcopy(source.model)).requires_grad_(True)  # the source stays as it was kept

    def recalibrate() -> None:
        recalibrate_batchnorm(model, run.recalibration, runtime, config.pruning.recalibration_samples)

    with clock.phase("pruning"):
        masks = KernelMasks(select_kernel_layers(model, tkp, run.example))
    if tkp.stage1_epochs:
        penalty = get_penalty(tkp.reg_type)
        extra = (lambda: tkp.beta * tail_loss(masks.layers, penalty, tkp.alpha)) if penalty.penalises else None
        judge = _masked_accuracy(masks, recalibrate, loaders.val, runtime)
        with clock.phase("evaluation"):
            start = judge(model)
        stage1 = recover(model, make_loss(run.teacher, recovery.kd_alpha, recovery.kd_temperature, extra),
                         loaders.train, loaders.val, runtime, recovery, source.target_sparsity, start,
                         on_epoch=on_epoch, epochs=tkp.stage1_epochs, lr=tkp.stage1_lr, judge=judge)
        clock.add("training", stage1.train_seconds)
        clock.add("evaluation", stage1.eval_seconds)
    with clock.phase("pruning"):
        masks.compute()
        masks.attach()
    with clock.phase("repair"):
        recalibrate()  # zeroed positions move every BN's input statistics
    with clock.phase("evaluation"):
        pre_accuracy = evaluate(model, loaders.val, runtime).accuracy
    # Distillation only in stage 2: the penalty's tail is zero under the masks.
    loss = make_loss(run.teacher, recovery.kd_alpha, recovery.kd_temperature)
    recovered = recover(model, loss, loaders.train, loaders.val, runtime, recovery, source.target_sparsity,
                        pre_accuracy, on_epoch=on_epoch, epochs=tkp.stage2_epochs,
                        lr=tkp.stage2_lr or recovery_lr(recovery, source.target_sparsity),
                        recalibrate=recalibrate if recovery.recalibrate_bn else None)
    clock.add("training", recovered.train_seconds)
    clock.add("evaluation", recovered.eval_seconds)
    deployable = bake(copy.deepcopy(model)).eval()
    complexity = measure(deployable, config.data.channels, config.data.image_size)
    effective = masks.effective_macs(complexity.macs)
    step = run.result.rows[-1].step + 1 if run.result.rows else 1
    row = StepRow.make(step, source.target_sparsity, source.sparsity, False, complexity, run.dense, pre_accuracy,
                       recovered, run.result.threshold, clock.take(), effective_macs=effective)
    row.phase = PHASE
    return TkpOutcome(row, deployable, masks.metadata(effective))


def _masked_accuracy(masks: KernelMasks, recalibrate, loader, runtime):
    """``judge(model)``: validation accuracy with the masks of its current weights, the model left as it was."""

    def judge(judged: nn.Module) -> float:
        state = {name: tensor.detach().clone() for name, tensor in judged.state_dict().items()}
        try:
            masks.compute()
            masks.zero()
            recalibrate()
            return evaluate(judged, loader, runtime).accuracy
        finally:
            judged.load_state_dict(state)

    return judge
