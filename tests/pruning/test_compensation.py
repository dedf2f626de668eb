import copy

import pytest
import torch

from prunetune.pruning.pruner import Pruner
from prunetune.pruning.statistics import collect_input_means, collect_output_stats


def _consumer_output_shift(trained, compensate: bool) -> tuple[float, int]:
    """Mean |change| of the first consumer's normalised output over calibration data after a 30% cut.

    The first consumer is the one whose remaining inputs the cut leaves untouched; later
    ones also see the (uncompensable) loss of variance propagated through ReLUs upstream.
    """
    config, baseline = trained
    model = copy.deepcopy(baseline.model).eval()
    calibration = baseline.loaders.calibration
    pruner = Pruner(model, next(iter(calibration))[0][:1], config.pruning)
    consumers = pruner.consumers()
    # Every consumer here is a bias-free conv normalised by the BN right after it, so its
    # output as the network sees it is that BN's output (where compensation lands).
    modules = dict(model.named_modules())
    first = min(consumers, key=list(modules).index)
    outputs = {first: modules[first.rsplit(".", 1)[0] + ".1"]}
    before = collect_output_stats(model, outputs, calibration, baseline.runtime)
    means = collect_input_means(model, consumers, calibration, baseline.runtime) if compensate else None
    result = pruner.step(0.3, consumer_means=means)
    assert result.sparsity == pytest.approx(0.3, abs=0.02)
    after = collect_output_stats(model, outputs, calibration, baseline.runtime)
    shift = torch.stack([(after[n].mean - before[n].mean).abs().mean() for n in outputs]).mean().item()
    return shift, result.compensated


def test_compensation_keeps_the_consumer_mean_output_at_least_10x_closer(trained_digits):
    plain, none_compensated = _consumer_output_shift(trained_digits, compensate=False)
    compensated, count = _consumer_output_shift(trained_digits, compensate=True)
    assert none_compensated == 0 and count == 3  # the three blocks' conv2 consumers
    assert plain > 1e-3
    assert compensated * 10 <= plain


def test_compensation_uses_the_bias_when_the_consumer_has_one():
    from prunetune.config import load_config
    from prunetune.data import ImageTensors, TensorLoader
    from prunetune.runtime import resolve_runtime

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4),
    ).eval()
    images = torch.randint(0, 256, (32, 3, 12, 12), dtype=torch.uint8)
    loader = TensorLoader(ImageTensors(images, torch.zeros(32, dtype=torch.long)), 16, torch.device("cpu"),
                          (0.5,) * 3, (0.25,) * 3)
    runtime = resolve_runtime(load_config(None, ["runtime.device=cpu"]).runtime)
    config = load_config(None, ["pruning.scope=all", "pruning.include=['0']", "pruning.exclude=['2']"]).pruning
    pruner = Pruner(model, torch.zeros(1, 3, 12, 12), config)
    assert [g.name for g in pruner.groups()] == ["0"]
    bias = model[2].bias.detach().clone()
    before = collect_output_stats(model, {"2": model[2]}, loader, runtime)["2"].mean
    pruner.step(0.5, consumer_means=collect_input_means(model, pruner.consumers(), loader, runtime))
    after = collect_output_stats(model, {"2": model[2]}, loader, runtime)["2"].mean
    assert not torch.equal(bias, model[2].bias)
    assert torch.allclose(before, after, atol=1e-5)  # padding handled: exact, not approximate
