"""The prune-and-recover loop every trial runs (seed 001's hand-run workflow).

``run(config, report=callback)`` loads (or trains once) the shared baseline, derives the
accuracy threshold, keeps a frozen copy as the distillation teacher, then for each
schedule step: calibration pass (statistics / input means / gradients, as the criterion
and compensation need) -> score -> compensate -> prune or mask -> repair -> evaluate ->
recover -> evaluate -> one report row -> stop below the threshold. The row of the step
that fell below is still reported (``feasible`` False) and never becomes the best.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import torch
import yaml

from prunetune.baseline import Baseline, prepare_baseline
from prunetune.config import JobConfig
from prunetune.io import write_atomic
from prunetune.models.complexity import measure
from prunetune.models.latency import model_latency
from prunetune.pipeline.losses import VarianceEntropy, group_l21
from prunetune.pipeline.recovery import make_loss, recover
from prunetune.pipeline.rows import RunResult, StepRow, write_rows
from prunetune.pruning import (Pruner, RepairContext, dense_reference, repair, save_pruned, schedule_targets,
                               solve_mac_target)
from prunetune.pruning.masks import cut_copy, masked_complexity
from prunetune.pruning.statistics import collect_calibration, collect_gradients
from prunetune.runtime import Runtime, seed_everything
from prunetune.training import evaluate, recalibrate_batchnorm

ReportCallback = Callable[[dict], None]
VARIANCE_REPAIRS = ("layerwise", "asr")


def accuracy_threshold(config: JobConfig, baseline_accuracy: float) -> float:
    if config.stop.min_accuracy is not None:
        return config.stop.min_accuracy
    return baseline_accuracy - config.stop.max_accuracy_drop


def run_directory(config: JobConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path(config.storage.root) / "runs" / f"{config.name}-{stamp}"


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


def _targets(config: JobConfig, student, example, stats) -> list[float]:
    schedule = config.pruning.schedule
    if schedule.kind != "mac_target":
        return schedule_targets(schedule)
    sparsity, _ = solve_mac_target(lambda m: Pruner(m, example, config.pruning, config.seed, config.latency), student,
                                   config.data.channels, config.data.image_size, schedule.mac_target, stats=stats)
    return schedule_targets(schedule, sparsity)


def run(config: JobConfig, report: ReportCallback | None = None, directory: str | Path | None = None,
        on_epoch: Callable[[dict], None] | None = None, on_baseline: Callable[[dict], None] | None = None,
        save_steps: bool = False) -> RunResult:
    """Run the whole prune-and-recover pipeline; ``report(row)`` gets one dict per step.

    The run folder gets ``best.pt`` (the best feasible step) and ``last.pt``; with
    ``save_steps`` also ``step.pt``, the latest feasible step's model, written before that
    step is reported (a search checkpoints it).
    """
    directory = Path(directory) if directory is not None else run_directory(config)
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "config.yaml", lambda p: p.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False)))
    baseline = prepare_baseline(config)
    runtime, loaders, pruning = baseline.runtime, baseline.loaders, config.pruning
    seed_everything(config.seed)

    teacher = baseline.model.eval().requires_grad_(False)
    student = copy.deepcopy(teacher).requires_grad_(True)
    channels, size = config.data.channels, config.data.image_size
    baseline_accuracy = baseline.record.accuracy
    threshold = accuracy_threshold(config, baseline_accuracy)
    dense = measure(teacher, channels, size)
    if on_baseline is not None:
        on_baseline({"accuracy": baseline_accuracy, "macs": dense.macs, "params": dense.params,
                     "threshold": threshold, "reused": baseline.reused, "directory": str(baseline.directory)})
    example = next(iter(loaders.calibration))[0][:1].to(runtime.device)
    pruner = Pruner(student, example, pruning, seed=config.seed, latency=config.latency)
    recalibration = loaders.calibration if pruning.recalibration_split == "calibration" else loaders.val
    batches = pruning.calibration_batches
    reference = (dense_reference(teacher, loaders.calibration, runtime, batches)
                 if pruning.repair in VARIANCE_REPAIRS else None)
    if config.recovery.sparse_pretrain_epochs:
        _sparse_pretraining(student, teacher, pruner, baseline, config, on_epoch)
    needs_stats = pruner.criterion.needs_stats
    targets = _targets(config, student, example,
                       collect_calibration(student, loaders.calibration, runtime, batches, groups=pruner.groups())[0]
                       if needs_stats and pruning.schedule.kind == "mac_target" else None)

    entropy = VarianceEntropy(_scope_layers(pruner)) if config.recovery.variance_entropy_lambda else None
    extra = (lambda: config.recovery.variance_entropy_lambda * entropy.pop()) if entropy else None
    loss = make_loss(teacher, config.recovery.kd_alpha, config.recovery.kd_temperature, extra)
    clock = PhaseClock(runtime)

    def recalibrate_student() -> None:
        recalibrate_batchnorm(student, recalibration, runtime, pruning.recalibration_samples)
        if pruner.masks:
            pruner.masks.apply()

    recalibrate = recalibrate_student if config.recovery.recalibrate_bn else None
    timed = config.search.objectives == "accuracy_latency"
    result = RunResult(directory, baseline_accuracy, threshold, dense.macs, dense.params,
                       cost="latency_ms" if timed else "macs")
    try:
        for step, target in enumerate(targets, start=1):
            mask = pruning.mask_then_prune and step < len(targets)
            with clock.phase("stats"):
                groups = pruner.groups()
                stats, means = collect_calibration(
                    student, loaders.calibration, runtime, batches, groups=groups if needs_stats else None,
                    consumers=pruner.consumers(groups) if pruning.compensation else None)
                if pruner.criterion.needs_gradients:
                    collect_gradients(student, loaders.calibration, runtime, batches)
            with clock.phase("scoring"):
                scores = pruner.scores(stats, groups)
                student.zero_grad(set_to_none=True)
            with clock.phase("pruning"):
                pruner.step(target, scores=scores, consumer_means=means or None, mask=mask)
            with clock.phase("repair"):
                repair(pruning.repair, RepairContext(
                    student, runtime, recalibration, pruning.recalibration_samples, loaders.calibration, batches,
                    reference, pruner.kept_channels(), pruning.asr_lambda))
                pruner.masks.apply()
            with clock.phase("evaluation"):
                pre_accuracy = _accuracy(student, loaders.val, runtime)
            recovered = recover(student, loss, loaders.train, loaders.val, runtime, config.recovery, target,
                                pre_accuracy, pruner.masks.apply if pruner.masks else None, on_epoch,
                                recalibrate=recalibrate)
            clock.add("training", recovered.train_seconds)
            clock.add("evaluation", recovered.eval_seconds)
            student.eval()
            complexity = (masked_complexity(student, pruner.masks.masked, example, channels, size)
                          if pruner.masks else measure(student, channels, size))
            row = StepRow.make(step, target, pruner.sparsity(), mask, complexity, dense, pre_accuracy, recovered,
                               threshold, clock.take())
            row.peak_memory_mb = clock.take_peak_memory()
            if timed:
                deployed = cut_copy(student, pruner.masks.masked, example) if pruner.masks else student
                row.latency_ms = model_latency(deployed, channels, size, config.latency.batch_size,
                                               config.latency.repeats, config.latency.device)
            result.add(row)
            if row.is_best:
                _save(student, pruner, example, directory / "best.pt", row)
            if save_steps and row.feasible:
                _save(student, pruner, example, directory / "step.pt", row)
            write_rows(directory / "rows.parquet", result.rows)
            if report is not None:
                report(row.to_dict())
            if not row.feasible:
                break
    finally:
        if entropy is not None:
            entropy.close()
    if result.rows:
        _save(student, pruner, example, directory / "last.pt", result.rows[-1])
    return result


def _accuracy(model, loader, runtime) -> float:
    return evaluate(model, loader, runtime).accuracy


def _save(student, pruner: Pruner, example, path: Path, row: StepRow) -> None:
    model = cut_copy(student, pruner.masks.masked, example) if pruner.masks else student
    save_pruned(model, path, row.to_dict())
