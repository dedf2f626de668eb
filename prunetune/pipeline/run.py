"""The prune-and-recover loop every trial runs (seed 001's hand-run workflow).

``run(config, report=callback)`` loads (or trains once) the shared baseline, derives the
accuracy threshold, keeps a frozen copy as the distillation teacher (or loads
``recovery.teacher``), then for each schedule step: calibration pass (statistics / input
means / gradients, as the criterion and compensation need) -> score -> compensate ->
prune or mask -> repair -> evaluate -> recover -> evaluate -> one report row -> stop below
the threshold. The row of the step that fell below is still reported (``feasible`` False)
and never becomes the best. With ``recovery.final_epochs``, seed 003's phase 3 follows:
the last feasible model fine-tuned, one more row (``phase`` "final"). With ``tkp.topk`` /
``tkp.nm``, the TKP stage follows (``kernel_stage.py``): one more row (``phase`` "tkp"), also
alone when ``pruning.schedule.kind`` is none.

Read top to bottom: ``prepare_run`` (once), ``prune_step`` (one schedule step, returns its
row), ``final_step`` (the final fine-tuning), ``record_step`` (keep, save, report), and
``run``, the loop over them and the TKP stage.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch
import yaml
from torch import nn

from prunetune.baseline import Baseline, prepare_baseline
from prunetune.config import JobConfig
from prunetune.data.deployment import DEPLOYMENT_FILE, deployment_info
from prunetune.io import write_atomic
from prunetune.models.complexity import Complexity, measure
from prunetune.models.latency import model_latency
from prunetune.objectives import OBJECTIVES, Objective
from prunetune.pipeline.kernel_stage import tkp_source, tkp_stage
from prunetune.pipeline.losses import VarianceEntropy, group_l21
from prunetune.pipeline.recovery import make_loss, recover
from prunetune.pipeline.rows import RunResult, StepRow, write_rows
from prunetune.pruning import (DenseReference, Pruner, RepairContext, dense_reference, repair, save_pruned,
                               schedule_targets, solve_mac_target)
from prunetune.pruning.masks import cut_copy, masked_complexity
from prunetune.pruning.repair import get_repair
from prunetune.pruning.statistics import collect_calibration, collect_gradients, stat_points
from prunetune.runtime import Runtime, seed_everything
from prunetune.training import evaluate, recalibrate_batchnorm

ReportCallback = Callable[[dict], None]
DEFAULT_OBJECTIVE = "accuracy_macs"  # what a run outside a search ranks its steps by


def accuracy_threshold(config: JobConfig, baseline_accuracy: float) -> float:
    if config.stop.min_accuracy is not None:
        return config.stop.min_accuracy
    return baseline_accuracy - config.stop.max_accuracy_drop


def run_directory(config: JobConfig) -> Path:
    """``<storage.root>/<name>-<time>``: beside the search homes (``<root>/<name>``) and ``baselines/``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path(config.storage.root) / f"{config.name}-{stamp}"


class PhaseClock:
    """Seconds per named phase; on CUDA it synchronises once per phase boundary, never per batch."""

    def __init__(self, runtime: Runtime) -> None:
        self.cuda = runtime.device.type == "cuda"
        self.seconds: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str):
        if self.cuda:
            torch.cuda.synchronize()
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.cuda:
                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def take(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, {}
        return taken

    def take_peak_memory(self) -> float:
        """MiB of peak CUDA allocation since the last call (NaN off CUDA); resets the peak."""
        if not self.cuda:
            return math.nan
        peak = torch.cuda.max_memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
        return peak


def _scope_layers(pruner: Pruner) -> dict[str, torch.nn.Module]:
    return {name: module for g in pruner.groups() for name, module in g.producers}


def _sparse_pretraining(student, teacher, pruner: Pruner, baseline: Baseline, config: JobConfig, on_epoch) -> None:
    """Seed 003 1.4.2: L2,1 over the scope's producers, before the first step."""
    recovery = config.recovery
    layers = list(_scope_layers(pruner).values())
    loss = make_loss(teacher, recovery.kd_alpha, recovery.kd_temperature,
                     lambda: recovery.sparse_lambda * group_l21(layers))
    recover(student, loss, baseline.loaders.train, baseline.loaders.val, baseline.runtime, recovery, 0.0,
            start_accuracy=-1.0, on_epoch=on_epoch, epochs=recovery.sparse_pretrain_epochs)


def _targets(config: JobConfig, student, example, get_pruner: Callable[[], Pruner],
             baseline: Baseline) -> list[float]:
    def solve() -> float:
        # The dense model's ranking decides the cut at every candidate sparsity: scored once,
        # here, where the criterion's statistics and gradients exist (the solver cuts copies).
        runtime, calibration, batches = baseline.runtime, baseline.loaders.calibration, config.pruning.calibration_batches
        pruner = get_pruner()
        groups = pruner.groups()
        stats = (collect_calibration(student, calibration, runtime, batches, groups=groups)[0]
                 if pruner.criterion.needs_stats else None)
        if pruner.criterion.needs_gradients:
            collect_gradients(student, calibration, runtime, batches)
        scores = pruner.scores(stats, groups)
        student.zero_grad(set_to_none=True)
        sparsity, _ = solve_mac_target(lambda m: Pruner(m, example, config.pruning, config.seed, config.latency),
                                       student, config.data.channels, config.data.image_size,
                                       config.pruning.schedule.mac_target, scores)
        return sparsity

    return schedule_targets(config.pruning.schedule, solve)


@dataclass
class PreparedRun:
    """Everything the steps of one run share, set up once before the first cut."""

    config: JobConfig
    objective: Objective
    directory: Path
    baseline: Baseline
    teacher: nn.Module
    student: nn.Module
    example: torch.Tensor
    dense: Complexity
    pruner: Pruner | None  # None when the schedule makes no channel step (the TKP stage alone)
    reference: DenseReference | None  # the dense model's moments, for repairs that need them
    targets: list[float]
    loss: Callable
    entropy: VarianceEntropy | None
    result: RunResult
    clock: PhaseClock
    last_feasible: tuple[nn.Module, StepRow] | None = None  # kept for the final fine-tuning and TKP only

    @property
    def recalibration(self):
        loaders = self.baseline.loaders
        return loaders.calibration if self.config.pruning.recalibration_split == "calibration" else loaders.val

    def recalibrate_student(self) -> None:
        recalibrate_batchnorm(self.student, self.recalibration, self.baseline.runtime,
                              self.config.pruning.recalibration_samples)
        if self.pruner is not None and self.pruner.masks:
            self.pruner.masks.apply()


def prepare_run(config: JobConfig, directory: Path, objective: Objective, on_epoch=None,
                on_baseline=None, baseline_directory: Path | None = None) -> PreparedRun:
    """Baseline, threshold, teacher and student, pruner, dense reference, targets and the loss.

    ``baseline_directory``: the baseline saved there (a search trial's: the driver's), not
    the one ``config`` keys.
    """
    write_atomic(directory / "config.yaml", lambda p: p.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False)))
    baseline = prepare_baseline(config, directory=baseline_directory)
    # What `prunetune export RUN_DIR` stores for a deployer (class names, preprocessing), from the splits used.
    deployment = json.dumps(deployment_info(baseline.splits), indent=1)
    write_atomic(directory / DEPLOYMENT_FILE, lambda p: p.write_text(deployment))
    runtime, loaders, pruning = baseline.runtime, baseline.loaders, config.pruning
    seed_everything(config.seed)
    unpruned = baseline.model.eval().requires_grad_(False)
    # recovery.teacher: a separate trained model (seed 001's runs distil a student); else the unpruned baseline
    teacher = baseline.teacher if baseline.teacher is not None else unpruned
    student = copy.deepcopy(unpruned).requires_grad_(True)
    threshold = accuracy_threshold(config, baseline.record.accuracy)
    dense = measure(unpruned, config.data.channels, config.data.image_size)
    if on_baseline is not None:
        on_baseline(baseline.summary(threshold))
    example = next(iter(loaders.calibration))[0][:1].to(runtime.device)
    built: list[Pruner] = []  # once, on first need: the TKP stage alone needs no channel groups in scope

    def student_pruner() -> Pruner:
        if not built:
            built.append(Pruner(student, example, pruning, seed=config.seed, latency=config.latency))
        return built[0]

    if config.recovery.sparse_pretrain_epochs:
        _sparse_pretraining(student, teacher, student_pruner(), baseline, config, on_epoch)
    targets = _targets(config, student, example, student_pruner, baseline)
    pruner = student_pruner() if targets else None
    reference = (dense_reference(unpruned, loaders.calibration, runtime, pruning.calibration_batches)
                 if targets and get_repair(pruning.repair).needs_reference else None)
    entropy = (VarianceEntropy(stat_points(student, pruner.groups(), example))
               if config.recovery.variance_entropy_lambda else None)
    extra = (lambda: config.recovery.variance_entropy_lambda * entropy.pop()) if entropy else None
    loss = make_loss(teacher, config.recovery.kd_alpha, config.recovery.kd_temperature, extra)
    result = RunResult(directory, baseline.record.accuracy, threshold, dense.macs, dense.params, cost=objective.cost,
                       baseline_latency_ms=_latency(config, unpruned) if objective.measures_latency else math.nan)
    return PreparedRun(config, objective, directory, baseline, teacher, student, example, dense, pruner, reference,
                       targets, loss, entropy, result, PhaseClock(runtime))


def prune_step(run: PreparedRun, step: int, target: float, on_epoch=None) -> StepRow:
    """One schedule step: statistics -> scores -> cut (or masks) -> repair -> recover -> its row."""
    config, pruner, student, clock = run.config, run.pruner, run.student, run.clock
    runtime, loaders, pruning = run.baseline.runtime, run.baseline.loaders, config.pruning
    batches = pruning.calibration_batches
    mask = pruning.mask_then_prune and step < len(run.targets)
    with clock.phase("stats"):
        groups = pruner.groups()
        stats, means = collect_calibration(
            student, loaders.calibration, runtime, batches, groups=groups if pruner.criterion.needs_stats else None,
            consumers=pruner.consumers(groups) if pruning.compensation else None)
        if pruner.criterion.needs_gradients:
            collect_gradients(student, loaders.calibration, runtime, batches)
    with clock.phase("scoring"):
        scores = pruner.scores(stats, groups)
        student.zero_grad(set_to_none=True)
    with clock.phase("pruning"):
        pruner.step(target, scores=scores, consumer_means=means or None, mask=mask)
        # A cut replaces the weights of every layer it touches with new, contiguous (NCHW)
        # tensors: put the training layout back, or every later step trains in NCHW.
        runtime.prepare(student)
    with clock.phase("repair"):
        repair(pruning.repair, RepairContext(
            model=student, runtime=runtime, recalibration=run.recalibration, samples=pruning.recalibration_samples,
            calibration=loaders.calibration, calibration_batches=batches, reference=run.reference,
            kept=pruner.kept_channels(), asr_lambda=pruning.asr_lambda))
        pruner.masks.apply()
    with clock.phase("evaluation"):
        pre_accuracy = _accuracy(student, loaders.val, runtime)
    recovered = recover(student, run.loss, loaders.train, loaders.val, runtime, config.recovery, target,
                        pre_accuracy, pruner.masks.apply if pruner.masks else None, on_epoch,
                        recalibrate=run.recalibrate_student if config.recovery.recalibrate_bn else None)
    clock.add("training", recovered.train_seconds)
    clock.add("evaluation", recovered.eval_seconds)
    student.eval()
    channels, size = config.data.channels, config.data.image_size
    complexity = (masked_complexity(student, pruner.masks.masked, run.example, channels, size)
                  if pruner.masks else measure(student, channels, size))
    row = StepRow.make(step, target, pruner.sparsity(), mask, complexity, run.dense, pre_accuracy, recovered,
                       run.result.threshold, clock.take())
    return _close_row(run, row, lambda: _deployable(run))


def final_step(run: PreparedRun, on_epoch=None) -> tuple[StepRow, nn.Module]:
    """Seed 003's phase 3: fine-tune the last feasible step's model, without a cut; its row and model.

    The last *feasible* model, not the last cut: a step below the threshold ends the cuts,
    and the model worth fine-tuning is the one a user would keep (seed 001 keeps it by hand).
    """
    config, clock, recovery = run.config, run.clock, run.config.recovery
    runtime, loaders = run.baseline.runtime, run.baseline.loaders
    model, source = run.last_feasible
    model = runtime.prepare(model)  # a masked step's model was cut into fresh NCHW tensors

    def recalibrate() -> None:
        recalibrate_batchnorm(model, run.recalibration, runtime, config.pruning.recalibration_samples)

    with clock.phase("repair"):
        recalibrate()  # seed 003 phase 3: BN statistics recalibrated at its start (1.5.3)
    with clock.phase("evaluation"):
        pre_accuracy = _accuracy(model, loaders.val, runtime)
    # Distillation only: the regularisers shape channels for the next cut (seed 003 1.4.4
    # applies variance entropy "during pruning"), and none follows.
    loss = make_loss(run.teacher, recovery.kd_alpha, recovery.kd_temperature)
    recovered = recover(model, loss, loaders.train, loaders.val, runtime, recovery, source.target_sparsity,
                        pre_accuracy, on_epoch=on_epoch, epochs=recovery.final_epochs, lr=recovery.final_lr,
                        recalibrate=recalibrate if recovery.recalibrate_bn else None)
    clock.add("training", recovered.train_seconds)
    clock.add("evaluation", recovered.eval_seconds)
    model.eval()
    row = StepRow.make(run.result.rows[-1].step + 1, source.target_sparsity, source.sparsity, False,
                       measure(model, config.data.channels, config.data.image_size), run.dense, pre_accuracy,
                       recovered, run.result.threshold, clock.take())
    row.phase = "final"
    return _close_row(run, row, lambda: model), model


def record_step(run: PreparedRun, row: StepRow, save_steps: bool, report: ReportCallback | None,
                model: nn.Module | None = None, metadata: dict | None = None) -> None:
    """Add the row to the run's result, save the models it keeps, write the rows, report it.

    ``model`` is the row's model where it is not the student's (the final fine-tuning's, TKP's);
    ``metadata`` what its saved files carry besides the row (TKP's masks).
    """
    run.result.add(row)
    # A later stage starts from the last feasible model: the final fine-tuning from a cut's,
    # the TKP stage from a cut's or the final fine-tuning's.
    later = ((row.phase == "prune" and run.config.recovery.final_epochs > 0)
             or (row.phase != "tkp" and run.config.tkp.enabled))
    keep = row.feasible and later
    if row.is_best or (save_steps and row.feasible) or keep:
        with _hooks_off(run):
            deployable = model if model is not None else _deployable(run)
            saved = {**row.to_dict(), **(metadata or {})}
            if row.is_best:
                save_pruned(deployable, run.directory / "best.pt", saved)
            if save_steps and row.feasible:
                save_pruned(deployable, run.directory / "step.pt", saved)
            if keep:  # a copy where later cuts would change the student in place
                cuts_follow = deployable is run.student and row.step < len(run.targets)
                run.last_feasible = (copy.deepcopy(deployable) if cuts_follow else deployable), row
    write_rows(run.directory / "rows.parquet", run.result.rows)
    if report is not None:
        report(row.to_dict())


def run(config: JobConfig, report: ReportCallback | None = None, directory: str | Path | None = None,
        on_epoch: Callable[[dict], None] | None = None, on_baseline: Callable[[dict], None] | None = None,
        save_steps: bool = False, objective: Objective | None = None,
        baseline_directory: Path | None = None) -> RunResult:
    """Run the whole prune-and-recover pipeline; ``report(row)`` gets one dict per step.

    With ``recovery.final_epochs`` one more row follows the last step: the final fine-tuning
    (``phase`` "final") of the last feasible step's model; none when no step was feasible.
    The run folder gets ``best.pt`` (the best feasible step) and ``last.pt`` (the last row's
    model); with ``save_steps`` also ``step.pt``, the latest feasible step's model, written
    before that step is reported (a search checkpoints it). ``objective`` (default
    ``accuracy_macs``) decides what "most pruned" means for the best step, and whether every
    step is timed. ``baseline_directory``: prune the baseline saved there (see ``prepare_run``).
    """
    directory = Path(directory) if directory is not None else run_directory(config)
    directory.mkdir(parents=True, exist_ok=True)
    prepared = prepare_run(config, directory, objective or OBJECTIVES.get(DEFAULT_OBJECTIVE), on_epoch, on_baseline,
                           baseline_directory)
    try:
        for step, target in enumerate(prepared.targets, start=1):
            row = prune_step(prepared, step, target, on_epoch)
            record_step(prepared, row, save_steps, report)
            if not row.feasible:
                break
    finally:
        if prepared.entropy is not None:
            prepared.entropy.close()
    final = (final_step(prepared, on_epoch)
             if prepared.last_feasible is not None and config.recovery.final_epochs else None)
    if final is not None:
        record_step(prepared, final[0], save_steps, report, final[1])
    source = tkp_source(prepared) if config.tkp.enabled else None
    kernel = tkp_stage(prepared, source, on_epoch) if source is not None else None
    if kernel is not None:
        _close_row(prepared, kernel.row, lambda: kernel.model)
        record_step(prepared, kernel.row, save_steps, report, kernel.model, kernel.metadata)
    if prepared.result.rows:
        last, metadata = ((kernel.model, kernel.metadata) if kernel is not None
                          else (final[1], {}) if final is not None else (_deployable(prepared), {}))
        save_pruned(last, directory / "last.pt", {**prepared.result.rows[-1].to_dict(), **metadata})
    return prepared.result


def _close_row(run: PreparedRun, row: StepRow, deployable: Callable[[], nn.Module]) -> StepRow:
    """The row's peak memory, and its latency where the objective ranks by it."""
    row.peak_memory_mb = run.clock.take_peak_memory()
    if run.objective.measures_latency:
        row.latency_ms = _latency(run.config, deployable())
    return row


def _latency(config: JobConfig, model: nn.Module) -> float:
    """The model's latency as the latency section says to time it (the dense model's too: the ratio's base)."""
    latency, data = config.latency, config.data
    return model_latency(model, data.channels, data.image_size, latency.batch_size, latency.repeats, latency.device)


def _hooks_off(run: PreparedRun):
    """The variance-entropy hooks off the student while it is copied or saved (none in the copies)."""
    return run.entropy.detached() if run.entropy is not None else nullcontext()


def _accuracy(model, loader, runtime) -> float:
    return evaluate(model, loader, runtime).accuracy


def _deployable(run: PreparedRun) -> nn.Module:
    """The student as it would be deployed: masked channels cut from a copy when masks are on."""
    pruner = run.pruner
    return cut_copy(run.student, pruner.masks.masked, run.example) if pruner is not None and pruner.masks \
        else run.student
