import math

import pytest
import torch
from torch import nn

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader
from prunetune.runtime import resolve_runtime
from prunetune.training import evaluate, lr_at, recalibrate_batchnorm

CPU = resolve_runtime(load_config(None, ["runtime.device=cpu"]).runtime)


def test_lr_warms_up_linearly_then_follows_cosine():
    assert lr_at(0, 100, 1.0, "cosine", 10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, "cosine", 10) == pytest.approx(1.0)
    assert lr_at(10, 100, 1.0, "cosine", 10) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, "cosine", 10) == pytest.approx(0.5)
    assert lr_at(100, 100, 1.0, "cosine", 10) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(70, 100, 0.3, "constant", 0) == 0.3


def _loader(images: torch.Tensor, labels: torch.Tensor, batch: int = 16) -> TensorLoader:
    return TensorLoader(ImageTensors(images, labels), batch, torch.device("cpu"), (0.0,), (1 / 255,))


def test_recalibration_replaces_running_stats_with_data_statistics():
    images = torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    model[1].momentum = 0.01
    with torch.no_grad():
        activations = model[0](images.float())
    recalibrate_batchnorm(model, _loader(images, torch.zeros(64, dtype=torch.long)), CPU)
    assert torch.allclose(model[1].running_mean, activations.mean((0, 2, 3)), rtol=1e-4, atol=1e-3)
    assert model[1].momentum == 0.01 and not model.training


def test_recalibration_stops_at_max_samples():
    images = torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    used = recalibrate_batchnorm(model, _loader(images, torch.zeros(64, dtype=torch.long)), CPU, max_samples=20)
    assert used == 20 and model[1].num_batches_tracked.item() == 2


def test_evaluate_counts_accuracy_and_mean_loss():
    images = torch.zeros(10, 1, 2, 2, dtype=torch.uint8)
    labels = torch.tensor([0] * 7 + [1] * 3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([1.0, 0.0]))
    result = evaluate(model, _loader(images, labels, batch=4), CPU)
    assert result.accuracy == pytest.approx(0.7) and result.samples == 10
    expected = -(7 * math.log(math.e / (math.e + 1)) + 3 * math.log(1 / (math.e + 1))) / 10
    assert result.loss == pytest.approx(expected, rel=1e-5)
