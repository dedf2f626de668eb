"""A SIMULATED trial for bench/driver_scale.py: a made-up accuracy-vs-MACs curve in milliseconds.

Nothing here trains or prunes a model. The curve stands in for the pipeline so that the
driver, the searcher, the rung scheduler and the results store can be measured over
thousands of trials. It is plausible, not real:

- the schedule is the trial's own (``pruning.schedule``: linear or geometric, its steps and
  final sparsity), and a step's MAC ratio is (1 - sparsity)^1.8 (channel pruning removes
  MACs on both sides of a layer, so MACs fall faster than channels);
- a trial's *quality* q in [0.05, 1] comes from its settings (criterion, repair, learning
  rate, distillation weight) plus a per-trial random offset, so a sampler has something to
  learn; accuracy at a step falls by (1 - q) * 0.12 * ((1 - MAC ratio) / 0.9)^2 from a
  baseline of 0.95, plus 0.004 of evaluation noise;
- rows are real ``StepRow`` rows with the pipeline's running best (``RunResult``), the
  objective values the real trainable reports, and a 4 KB stand-in checkpoint for each new
  best step (what ``storage.step_models: best`` keeps), and the trial stops at its first
  step below the threshold, as the pipeline does.

``trial`` has the signature of ``prunetune.search.trainable.trial``; the benchmark hands it
to ``run_search(..., function=trial)``. Ray ships it to the workers by value (cloudpickle)
from the benchmark's own module, so the workers need not import ``bench/``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import tempfile
from pathlib import Path

BASELINE_ACCURACY = 0.95
BASELINE_MACS, BASELINE_PARAMS = 1_000_000, 50_000
CRITERION_QUALITY = {"l1": 0.60, "l2": 0.60, "bn_gamma": 0.50, "taylor": 0.70, "lamp": 0.65, "vbp": 0.55,
                     "mac_aware": 0.70}
REPAIR_QUALITY = {"none": -0.30, "bn": 0.0, "layerwise": 0.03, "asr": 0.05}


def quality(config, rng: random.Random) -> float:
    """How well the trial's settings keep accuracy under pruning (made up; see the module docstring)."""
    recovery = config.recovery
    value = (CRITERION_QUALITY.get(config.pruning.criterion, 0.5) + REPAIR_QUALITY.get(config.pruning.repair, 0.0)
             - 0.15 * (math.log10(recovery.lr) + 3.3) ** 2 - 0.1 * (recovery.kd_alpha - 0.6) ** 2
             + rng.gauss(0.0, 0.05))
    return min(1.0, max(0.05, value))


def sparsities(schedule) -> list[float]:
    final, steps = float(schedule.final_sparsity), schedule.steps
    if schedule.kind == "geometric":
        keep = (1.0 - final) ** (1.0 / steps)
        return [1.0 - keep ** (i + 1) for i in range(steps)]
    return [final * (i + 1) / steps for i in range(steps)]


def curve(config, params: dict) -> list[tuple[float, float, float]]:
    """(sparsity, MAC ratio, accuracy) per step, the same for the same settings."""
    seed = int(hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12], 16)
    rng = random.Random(seed)
    q = quality(config, rng)
    points = []
    for sparsity in sparsities(config.pruning.schedule):
        mac_ratio = (1.0 - sparsity) ** 1.8
        accuracy = BASELINE_ACCURACY - (1.0 - q) * 0.12 * ((1.0 - mac_ratio) / 0.9) ** 2 + rng.gauss(0.0, 0.004)
        points.append((sparsity, mac_ratio, accuracy))
    return points


def trial(params: dict, *, job: dict, space, baseline: dict, baseline_folder: str = "") -> None:
    from ray import tune

    from prunetune.config import JobConfig
    from prunetune.home import CHECKPOINT_MODEL
    from prunetune.objectives import OBJECTIVES
    from prunetune.pipeline.rows import RunResult, StepRow
    from prunetune.search.scalars import EPOCHS_KEY

    config = space.apply(JobConfig.from_dict(job), params)
    objective = OBJECTIVES.get(config.search.objectives)
    threshold = BASELINE_ACCURACY - config.stop.max_accuracy_drop
    result = RunResult(Path("."), BASELINE_ACCURACY, threshold, BASELINE_MACS, BASELINE_PARAMS)
    earlier: list[dict] = []
    for step, (sparsity, mac_ratio, accuracy) in enumerate(curve(config, params), start=1):
        row = result.add(StepRow(
            step=step, target_sparsity=sparsity, sparsity=sparsity, masked=False,
            macs=int(BASELINE_MACS * mac_ratio), params=int(BASELINE_PARAMS * (1 - sparsity)), mac_ratio=mac_ratio,
            param_ratio=1 - sparsity, pre_accuracy=accuracy - 0.05, accuracy=accuracy, best_epoch=1, epochs_run=1,
            lr=config.recovery.lr, threshold=threshold, feasible=accuracy >= threshold,
            seconds={"training": 0.001}))
        flat = row.to_dict()
        metrics = {**flat, **objective.values(flat, earlier), EPOCHS_KEY: []}
        earlier.append(flat)
        if row.is_best:
            with tempfile.TemporaryDirectory() as staging:
                (Path(staging) / CHECKPOINT_MODEL).write_bytes(bytes(4096))
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(staging))
        else:
            tune.report(metrics)
        if not row.feasible:
            return
