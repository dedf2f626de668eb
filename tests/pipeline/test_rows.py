"""The rows of a run: which step is the best feasible one, by MACs or by latency."""

import math

from prunetune.models.complexity import Complexity
from prunetune.objectives import OBJECTIVES
from prunetune.pipeline.recovery import RecoveryResult
from prunetune.pipeline.rows import RunResult, StepRow


def _row(step, macs, accuracy, threshold=0.5):
    recovered = RecoveryResult(accuracy=accuracy, best_epoch=1, epochs_run=1, lr=1e-3)
    return StepRow.make(step, 0.1 * step, 0.1 * step, False, Complexity(macs, 10), Complexity(1000, 20), accuracy,
                        recovered, threshold, {})


def test_an_infeasible_step_never_becomes_the_best():
    result = RunResult(None, 0.6, 0.5, 1000, 20)
    result.add(_row(1, 800, 0.58))
    result.add(_row(2, 600, 0.55))
    last = result.add(_row(3, 400, 0.45))
    assert not last.feasible and not last.is_best
    assert (last.best_step, last.best_accuracy, last.best_macs) == (2, 0.55, 600)
    first = RunResult(None, 0.6, 0.5, 1000, 20).add(_row(1, 800, 0.2))
    assert first.best_step is None and math.isnan(first.best_accuracy)


def _timed_row(step, macs, latency, accuracy, threshold=0.5):
    row = _row(step, macs, accuracy, threshold)
    row.latency_ms = latency
    return row


def test_with_latency_as_the_cost_the_best_feasible_step_is_the_fastest():
    result = RunResult(None, 0.6, 0.5, 1000, 20, cost="latency_ms")
    result.add(_timed_row(1, 800, 3.0, 0.58))
    faster_not_cheaper = result.add(_timed_row(2, 900, 2.0, 0.56))  # more MACs but less time
    assert faster_not_cheaper.is_best and faster_not_cheaper.best_latency_ms == 2.0
    slower = result.add(_timed_row(3, 400, 2.5, 0.55))
    assert not slower.is_best and slower.best_step == 2
    metrics = OBJECTIVES.get("accuracy_latency").values(slower.to_dict())
    assert (metrics["objective_accuracy"], metrics["objective_latency"]) == (0.56, 2.0)
    by_macs = RunResult(None, 0.6, 0.5, 1000, 20)
    assert [by_macs.add(_timed_row(*args)).is_best
            for args in ((1, 800, 3.0, 0.58), (2, 900, 2.0, 0.56))] == [True, False]
