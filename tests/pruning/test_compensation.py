import copy

import pytest
import torch

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader
from prunetune.errors import UserError
from prunetune.models.zoo import tiny_mobilenet, tiny_resnet
from prunetune.pruning.pruner import Pruner
from prunetune.pruning.repair import RepairContext, repair
from prunetune.pruning.statistics import collect_input_means, collect_output_stats
from prunetune.runtime import resolve_runtime
from prunetune.training import recalibrate_batchnorm

CPU = resolve_runtime(load_config(None, ["runtime.device=cpu"]).runtime)


def _loader(count=64, size=16):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    return TensorLoader(ImageTensors(images, torch.zeros(count, dtype=torch.long)), count, torch.device("cpu"),
                        (0.5,) * 3, (0.25,) * 3)


def _consumer_output_shift(trained, compensate: bool) -> tuple[float, int]:
    """Mean |change| of the first consumer's normalised output over calibration data after a 30% cut.

    The first consumer is the one whose remaining inputs the cut leaves untouched; later
    ones also see the (uncompensable) loss of variance propagated through ReLUs upstream.
    """
    config, baseline = trained
    model = copy.deepcopy(baseline.model).eval()
    calibration = baseline.loaders.calibration
    # No recalibration after the cut: the fold into the BN's running mean is what is measured.
    pruner = Pruner(model, next(iter(calibration))[0][:1], config.pruning.model_copy(update={"repair": "none"}))
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


def _pruned_and_repaired(dense, loader, compensation: bool, repair_kind: str = "bn"):
    """A 40% expand-scope cut of a copy of ``dense`` (with compensation if asked), then the repair."""
    model = copy.deepcopy(dense)
    config = load_config(None, [f"pruning.compensation={str(compensation).lower()}",
                                f"pruning.repair={repair_kind}"]).pruning
    pruner = Pruner(model, torch.zeros(1, 3, 16, 16), config)
    means = collect_input_means(model, pruner.consumers(), loader, CPU) if compensation else None
    result = pruner.step(0.4, consumer_means=means)
    repair(repair_kind, RepairContext(model=model, runtime=CPU, recalibration=loader, samples=64))
    return model, result.compensated


def test_under_bn_recalibration_compensation_changes_the_se_consumers_and_keeps_their_mean_output():
    torch.manual_seed(0)
    dense = tiny_mobilenet(10, width=8).eval()
    loader = _loader()
    recalibrate_batchnorm(dense, loader, CPU)
    first = {"1.se.fc1": dense[1].se.fc1}  # the first consumer: nothing upstream of it is cut
    dense_mean = collect_output_stats(dense, first, loader, CPU)["1.se.fc1"].mean
    plain, none_changed = _pruned_and_repaired(dense, loader, compensation=False)
    compensated, changed = _pruned_and_repaired(dense, loader, compensation=True)
    # The four SE squeeze convs (biased, no BN after them) change; the four project convs,
    # each normalised by a BN that recalibration re-estimates, are skipped as redundant.
    assert (none_changed, changed) == (0, 4)
    assert not torch.equal(plain[1].se.fc1.bias, compensated[1].se.fc1.bias)
    gap_plain = (collect_output_stats(plain, {"1.se.fc1": plain[1].se.fc1}, loader, CPU)["1.se.fc1"].mean
                 - dense_mean).abs().max().item()
    gap_compensated = (collect_output_stats(compensated, {"1.se.fc1": compensated[1].se.fc1}, loader, CPU)
                       ["1.se.fc1"].mean - dense_mean).abs().max().item()
    assert gap_plain > 1e-2 and gap_compensated < 1e-5
    images = next(iter(loader))[0]
    assert not torch.allclose(plain(images), compensated(images))


def test_bn_recalibration_makes_a_fold_into_the_bn_exactly_redundant():
    """Why compensation is refused / skipped for BN-normalised consumers under a recalibrating repair."""
    torch.manual_seed(0)
    dense = tiny_resnet(10, width=8).eval()
    loader = _loader()
    recalibrate_batchnorm(dense, loader, CPU)
    folded, changed = _pruned_and_repaired(dense, loader, compensation=True, repair_kind="none")
    plain, _ = _pruned_and_repaired(dense, loader, compensation=False, repair_kind="none")
    assert changed == 3 and not torch.equal(folded[1].conv2[1].running_mean, plain[1].conv2[1].running_mean)
    for model in (folded, plain):
        repair("bn", RepairContext(model=model, runtime=CPU, recalibration=loader, samples=64))
    images = next(iter(loader))[0]
    assert torch.equal(folded(images), plain(images))


@pytest.mark.parametrize("kind", ["bn", "layerwise", "asr"])
def test_compensation_is_refused_where_the_repair_leaves_it_nothing_to_change(kind):
    model = tiny_resnet(10, width=8).eval()  # expand scope: every consumer is a conv followed by BN
    config = load_config(None, ["pruning.compensation=true", f"pruning.repair={kind}"]).pruning
    with pytest.raises(UserError, match=rf"pruning.compensation: true changes nothing here: .*\(1.conv2.0, "
                                        rf"2.conv2.0, 3.conv2.0\).* pruning.repair '{kind}' re-estimates"):
        Pruner(model, torch.zeros(1, 3, 16, 16), config)
    Pruner(model, torch.zeros(1, 3, 16, 16), config.model_copy(update={"repair": "none"}))
