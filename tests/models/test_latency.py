"""Measured latency: the whole-model median, per-layer hook timing, and latency as a pruning cost."""

import pytest
import torch
from torch import nn

from prunetune.config import load_config
from prunetune.models.latency import layer_latencies, model_latency
from prunetune.models.zoo import tiny_mobilenet
from prunetune.pipeline.recovery import RecoveryResult
from prunetune.pipeline.rows import RunResult, StepRow
from prunetune.models.complexity import Complexity
from prunetune.pruning import Pruner
from prunetune.pruning.criteria import channel_costs
from prunetune.pruning.scope import build_graph, select_scope
from prunetune.search.objectives import objective_metrics


def test_model_latency_is_a_positive_median_and_leaves_the_model_alone():
    model = tiny_mobilenet().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert model_latency(model, 3, 32, batch_size=2, repeats=3) > 0
    assert model.training  # measured on a copy
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN stats untouched


def test_layer_latencies_time_every_conv_and_linear_and_remove_their_hooks():
    model = tiny_mobilenet().train()
    times = layer_latencies(model, torch.randn(1, 3, 32, 32), repeats=3)
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert set(times) == set(layers) and all(t > 0 for t in times.values())
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in layers)


def test_latency_costs_are_each_member_layers_time_per_channel():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.Flatten(), nn.LazyLinear(10)).eval()
    example = torch.randn(1, 3, 8, 8)
    model(example)
    graph = build_graph(model, example)
    group = next(g for g in select_scope(model, graph, "all") if g.name == "0")
    fake = {model[0]: 8.0, model[3]: 4.0, model[6]: 2.0, model[8]: 1.0}
    cost = channel_costs(model, [group], example, latencies=fake)[group.name]
    # expand conv out side 8/8, depthwise counted once 4/8, consumer conv in side 2/8
    assert cost == pytest.approx(8 / 8 + 4 / 8 + 2 / 8)


def test_mac_aware_with_latency_cost_scores_every_channel_of_a_real_model():
    config = load_config(None, ["pruning.criterion=mac_aware", "pruning.mac_aware.cost=latency",
                                "pruning.mac_aware.beta=-1.0", "latency.repeats=2"]).pruning
    model = tiny_mobilenet().eval()
    pruner = Pruner(model, torch.randn(1, 3, 32, 32), config)
    scores = pruner.scores()
    assert set(scores) == {g.name for g in pruner.groups()}
    assert all(torch.isfinite(s).all() and len(s) == g.channels for g, s in zip(pruner.groups(), scores.values()))


def _row(step, macs, latency, accuracy, threshold=0.5):
    recovered = RecoveryResult(accuracy=accuracy, best_epoch=1, epochs_run=1, lr=1e-3)
    row = StepRow.make(step, 0.1 * step, 0.1 * step, False, Complexity(macs, 10), Complexity(1000, 20), accuracy,
                       recovered, threshold, {})
    row.latency_ms = latency
    return row


def test_with_latency_as_the_cost_the_best_feasible_step_is_the_fastest():
    result = RunResult(None, 0.6, 0.5, 1000, 20, cost="latency_ms")
    result.add(_row(1, 800, 3.0, 0.58))
    faster_not_cheaper = result.add(_row(2, 900, 2.0, 0.56))  # more MACs but less time
    assert faster_not_cheaper.is_best and faster_not_cheaper.best_latency_ms == 2.0
    slower = result.add(_row(3, 400, 2.5, 0.55))
    assert not slower.is_best and slower.best_step == 2
    metrics = objective_metrics(slower.to_dict())
    assert (metrics["objective_accuracy"], metrics["objective_latency"]) == (0.56, 2.0)
    by_macs = RunResult(None, 0.6, 0.5, 1000, 20)
    assert [by_macs.add(_row(*args)).is_best for args in ((1, 800, 3.0, 0.58), (2, 900, 2.0, 0.56))] == [True, False]


def test_a_latency_search_run_measures_every_step(tiny_job, tmp_path):
    from prunetune.pipeline import run

    config = tiny_job("pruning.scope=all", "pruning.schedule.targets=[0.2,0.4]", "recovery.epochs=1",
                      "stop.min_accuracy=0.0", "search.objectives=accuracy_latency", "latency.repeats=3")
    result = run(config, directory=tmp_path / "run")
    assert len(result.rows) == 2 and all(row.latency_ms > 0 for row in result.rows)
    assert result.rows[-1].best_latency_ms == min(row.latency_ms for row in result.rows)
