"""Measured latency: the whole-model median and per-layer hook timing."""

import torch
from torch import nn

from prunetune.models.latency import layer_latencies, model_latency
from prunetune.models.zoo import tiny_mobilenet


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
