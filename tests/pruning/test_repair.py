import copy

import pytest
import torch

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader
from prunetune.errors import UnknownNameError
from prunetune.models.zoo import tiny_mobilenet
from prunetune.pruning.pruner import Pruner
from prunetune.pruning.repair import (REPAIRS, RepairContext, asr_gains, dense_reference, layerwise_gains, repair,
                                     repair_points, shrinkage_lambda)
from prunetune.pruning.statistics import collect_point_stats
from prunetune.runtime import resolve_runtime
from prunetune.training import recalibrate_batchnorm

CPU = resolve_runtime(load_config(None, ["runtime.device=cpu"]).runtime)


def test_asr_gain_follows_the_formula_on_a_hand_computed_example():
    dense, pruned = torch.tensor([4.0, 1.0, 9.0]), torch.tensor([1.0, 1.0, 0.01])
    # gamma* = (2, 1, 30); s = (1/2, 1/2, 0.01/1.01); gamma = s gamma* + 1 - s
    expected = torch.tensor([1.5, 1.0, 0.01 / 1.01 * 30 + 1.0 / 1.01])
    torch.testing.assert_close(asr_gains(dense, pruned, 1.0), expected)
    torch.testing.assert_close(asr_gains(dense, pruned, 0.0), torch.tensor([2.0, 1.0, 30.0]))  # full matching
    torch.testing.assert_close(asr_gains(dense, pruned, float("inf")), torch.ones(3))  # untouched
    torch.testing.assert_close(layerwise_gains(dense, pruned), torch.full((3,), (14 / 2.01) ** 0.5))


def test_dead_channels_are_left_out_of_lambda_and_the_layerwise_sums_and_keep_gain_one():
    # Mask-then-prune: 4 of 6 channels masked, variance exactly 0. The plain median is 0.
    pruned = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0, 3.0])
    dense = torch.tensor([2.0, 2.0, 2.0, 2.0, 4.0, 12.0])
    assert shrinkage_lambda(pruned, 2.0) == 2.0  # 2 x the lower median of (1, 3)
    assert shrinkage_lambda(torch.zeros(3), 1.0) == float("inf")
    torch.testing.assert_close(asr_gains(dense, pruned, 0.0), torch.tensor([1.0] * 4 + [2.0, 2.0]))
    torch.testing.assert_close(layerwise_gains(dense, pruned), torch.full((6,), 2.0))  # sqrt(16 / 4)
    torch.testing.assert_close(layerwise_gains(dense, torch.zeros(6)), torch.ones(6))


def test_registry_lists_the_repairs_and_rejects_unknown_ones():
    assert REPAIRS.names() == ["asr", "bn", "layerwise", "none"]
    with pytest.raises(UnknownNameError, match="pruning.repair: unknown repair 'magic'"):
        repair("magic", None)


def _loader(count=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator)
    return TensorLoader(ImageTensors(images, torch.zeros(count, dtype=torch.long)), 32, torch.device("cpu"),
                        (0.5,) * 3, (0.25,) * 3)


@pytest.fixture(scope="module")
def pruned_once():
    """A dense tiny_mobilenet with real BN statistics and a 60%-pruned copy (no repair yet)."""
    torch.manual_seed(0)
    dense = tiny_mobilenet(10, width=8).eval()
    loader = _loader()
    recalibrate_batchnorm(dense, loader, CPU)
    pruned = copy.deepcopy(dense)
    pruner = Pruner(pruned, torch.zeros(1, 3, 32, 32), load_config(None).pruning)
    pruner.step(0.6)
    reference = dense_reference(dense, loader, CPU)
    return dense, pruned, loader, reference, pruner.kept_channels()


@pytest.fixture
def pruned_pair(pruned_once):
    dense, pruned, loader, reference, kept = pruned_once
    return dense, copy.deepcopy(pruned), loader, reference, kept


def _context(pruned, loader, reference, kept, lam):
    return RepairContext(model=pruned, runtime=CPU, recalibration=loader, samples=64, calibration=loader,
                         reference=reference, kept=kept, asr_lambda=lam)


def test_asr_with_lambda_to_infinity_leaves_weights_unchanged_and_equals_bn(pruned_pair):
    dense, pruned, loader, reference, kept = pruned_pair
    plain = copy.deepcopy(pruned)
    repair("bn", RepairContext(model=plain, runtime=CPU, recalibration=loader, samples=64))
    repair("asr", _context(pruned, loader, reference, kept, float("inf")))
    expected = plain.state_dict()
    for name, value in pruned.state_dict().items():
        torch.testing.assert_close(value, expected[name], msg=name)


def test_asr_with_lambda_to_zero_matches_post_activation_variances_fully(pruned_pair):
    dense, pruned, loader, reference, kept = pruned_pair
    plain = copy.deepcopy(pruned)
    repair("bn", RepairContext(model=plain, runtime=CPU, recalibration=loader, samples=64))
    repair("asr", _context(pruned, loader, reference, kept, 0.0))
    points = repair_points(pruned, torch.zeros(1, 3, 32, 32))
    after = collect_point_stats(pruned, points, loader, CPU)
    before = collect_point_stats(plain, repair_points(plain, torch.zeros(1, 3, 32, 32)), loader, CPU)

    def gap(stats, name):
        dense_variance = reference.points[name].variance[kept.get(name, slice(None))]
        return ((stats[name].variance - dense_variance).abs() / dense_variance.clamp_min(1e-6)).mean().item()

    # The first point downstream of a cut (block 1's SE squeeze, no BN after it): BN
    # recalibration cannot touch it; full matching brings it to the dense variance.
    first = "1.se.fc1"
    assert gap(before, first) > 0.3
    assert gap(after, first) < 0.01
    # Everywhere else the one-pass estimate gets closer to the dense model, never further.
    assert all(gap(after, n) <= gap(before, n) + 0.01 for n in points)
    assert sum(gap(after, n) for n in points) < 0.3 * sum(gap(before, n) for n in points)


@pytest.mark.parametrize("kind", ["bn", "layerwise", "asr"])
def test_every_repair_keeps_the_model_runnable_and_in_eval_mode(pruned_pair, kind):
    dense, pruned, loader, reference, kept = pruned_pair
    repair(kind, _context(pruned, loader, reference, kept, 1.0))
    assert not pruned.training
    assert torch.isfinite(pruned(torch.randn(2, 3, 32, 32))).all()


def test_asr_keeps_shrinking_when_more_than_half_of_a_layer_is_masked():
    """A BN point with 4 of 7 channels masked and 3 identical live ones at a quarter of their
    dense variance (gamma* = 2): lambda is their median, so s = 1/2 and each gets 1.5."""
    torch.manual_seed(0)
    dense = torch.nn.Sequential(torch.nn.Conv2d(3, 7, 1, bias=False), torch.nn.BatchNorm2d(7), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(7, 2)).eval()
    with torch.no_grad():
        dense[0].weight[4:] = dense[0].weight[4]
        dense[1].bias.fill_(0.3)
    loader = _loader(count=32)  # one batch: recalibration gives the dense and pruned model the same statistics
    recalibrate_batchnorm(dense, loader, CPU)
    reference = dense_reference(dense, loader, CPU)
    pruned = copy.deepcopy(dense)
    with torch.no_grad():
        pruned[1].weight[:4] = 0.0
        pruned[1].bias[:4] = 0.0
        pruned[1].weight[4:] *= 0.5
        pruned[1].bias[4:] *= 0.5
    before = pruned[1].weight.detach().clone()
    repair("asr", _context(pruned, loader, reference, {}, 1.0))
    torch.testing.assert_close(pruned[1].weight[4:] / before[4:], torch.full((3,), 1.5))
    assert torch.equal(pruned[1].weight[:4], torch.zeros(4))
