import math

import pytest
import torch
from torch import nn
from torchvision.models import GoogLeNetOutputs
from torchvision.ops import StochasticDepth

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader
from prunetune.errors import ModelError, UnknownNameError
from prunetune.runtime import resolve_runtime
from prunetune.training import AUX_LOSS_WEIGHT, cross_entropy, evaluate, lr_at, recalibrate_batchnorm, train_epoch

CPU = resolve_runtime(load_config(None, ["runtime.device=cpu"]).runtime)


def test_lr_warms_up_linearly_then_follows_cosine():
    assert lr_at(0, 100, 1.0, "cosine", 10) == pytest.approx(0.1)
    assert lr_at(9, 100, 1.0, "cosine", 10) == pytest.approx(1.0)
    assert lr_at(10, 100, 1.0, "cosine", 10) == pytest.approx(1.0)
    assert lr_at(55, 100, 1.0, "cosine", 10) == pytest.approx(0.5)
    assert lr_at(100, 100, 1.0, "cosine", 10) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(70, 100, 0.3, "constant", 0) == 0.3


@pytest.mark.parametrize("iteration", [0, 50])
def test_an_unknown_lr_schedule_is_refused_in_warm_up_and_after(iteration):
    with pytest.raises(UnknownNameError, match="unknown lr schedule 'cosin'; known: constant, cosine"):
        lr_at(iteration, 100, 1.0, "cosin", 10)


def _loader(images: torch.Tensor, labels: torch.Tensor, batch: int = 16) -> TensorLoader:
    return TensorLoader(ImageTensors(images, labels), batch, torch.device("cpu"), (0.0,), (1 / 255,))


def _conv_output_moments(conv: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased variance (what BN stores) of ``conv`` on ``images``."""
    with torch.no_grad():
        activations = conv(images.float()).transpose(0, 1).flatten(1)
    return activations.mean(1), activations.var(1)


def test_recalibration_replaces_stale_running_stats_with_data_statistics():
    images = torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    # A trained model's stale statistics: without the reset (seed 003 1.5.3) the cumulative
    # average (momentum=None) would weigh them 1000:1 against the one new batch.
    model[1].momentum = 0.01
    model[1].running_mean.fill_(50.0)
    model[1].running_var.fill_(50.0)
    model[1].num_batches_tracked.fill_(1000)
    mean, variance = _conv_output_moments(model[0], images)
    recalibrate_batchnorm(model, _loader(images, torch.zeros(64, dtype=torch.long), batch=64), CPU)
    assert torch.allclose(model[1].running_mean, mean, rtol=1e-5, atol=1e-4)
    assert torch.allclose(model[1].running_var, variance, rtol=1e-5, atol=1e-4)
    assert model[1].momentum == 0.01 and model[1].num_batches_tracked.item() == 1


@pytest.mark.parametrize("noise", [nn.Dropout(p=0.9), StochasticDepth(p=0.9, mode="row")],
                         ids=["dropout", "stochastic_depth"])
def test_recalibration_collects_statistics_with_dropout_and_stochastic_depth_off(noise):
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), noise, nn.BatchNorm2d(2))
    mean, variance = _conv_output_moments(model[0], images)
    recalibrate_batchnorm(model, _loader(images, torch.zeros(64, dtype=torch.long), batch=64), CPU)
    assert torch.allclose(model[2].running_mean, mean, rtol=1e-5, atol=1e-4)
    assert torch.allclose(model[2].running_var, variance, rtol=1e-5, atol=1e-4)


def test_recalibration_restores_every_modules_train_or_eval_flag():
    images = torch.randint(0, 256, (16, 1, 4, 4), dtype=torch.uint8)
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Dropout(0.5), nn.BatchNorm2d(2), nn.BatchNorm2d(2)).train()
    model[1].eval()
    model[3].eval()
    recalibrate_batchnorm(model, _loader(images, torch.zeros(16, dtype=torch.long)), CPU)
    assert [m.training for m in model.modules()] == [True, True, False, True, False]
    model.eval()
    recalibrate_batchnorm(model, _loader(images, torch.zeros(16, dtype=torch.long)), CPU)
    assert not any(m.training for m in model.modules())


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


class _WithAuxHeads(nn.Module):
    """A GoogLeNet in miniature: in train mode, logits and two auxiliary classifiers' logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        self.fc, self.aux1, self.aux2 = nn.Linear(3, 2), nn.Linear(3, 2), nn.Linear(3, 2)

    def forward(self, x):
        features = self.features(x)
        logits = self.fc(features)
        if self.training:
            return GoogLeNetOutputs(logits, self.aux2(features), self.aux1(features))
        return logits


def test_train_epoch_trains_the_logits_of_a_tuple_output_plus_the_aux_losses_weighted_as_googlenet_does():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (8, 1, 2, 2), dtype=torch.uint8)
    labels = torch.tensor([0, 1] * 4)
    model, loader = _WithAuxHeads(), _loader(images, labels, batch=8)
    with torch.no_grad():
        features = model.features(next(iter(loader))[0])
        parts = [nn.functional.cross_entropy(head(features), labels) for head in (model.fc, model.aux1, model.aux2)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the weights the expected loss was computed with
    result = train_epoch(model, loader, optimizer, cross_entropy(), CPU)
    assert result.loss == pytest.approx((parts[0] + AUX_LOSS_WEIGHT * (parts[1] + parts[2])).item(), rel=1e-5)
    assert AUX_LOSS_WEIGHT == 0.3


def test_evaluate_refuses_a_tuple_output_that_holds_no_auxiliary_logits_in_one_line():
    class Features(nn.Module):
        def forward(self, x):
            flat = x.flatten(1)
            return flat[:, :2], flat

    images, labels = torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ModelError, match=r"^model output is a tuple of \[\(4, 2\), \(4, 4\)\]: expected") as error:
        evaluate(Features(), _loader(images, labels, batch=4), CPU)
    assert "\n" not in str(error.value)
