import pytest
import torch
import torchvision

from prunetune.config import load_config
from prunetune.errors import UnknownNameError
from prunetune.pruning.pruner import Pruner
from prunetune.pruning.schedules import (SCHEDULES, quadratic_estimate, schedule_targets,
                                         solve_mac_target)


def _schedule(*overrides):
    return load_config(None, [f"pruning.schedule.{o}" for o in overrides]).pruning.schedule


def test_explicit_targets_are_taken_as_given():
    assert schedule_targets(_schedule("targets=[0.1, 0.15, 0.2]")) == [0.1, 0.15, 0.2]


def test_linear_divides_the_final_sparsity_equally():
    assert schedule_targets(_schedule("kind=linear", "final_sparsity=0.6", "steps=3")) == pytest.approx([0.2, 0.4, 0.6])


def test_geometric_keeps_the_same_fraction_each_step():
    targets = schedule_targets(_schedule("kind=geometric", "final_sparsity=0.75", "steps=2"))
    assert targets == pytest.approx([0.5, 0.75])
    kept = [1 - t for t in [0.0] + targets]
    assert kept[1] / kept[0] == pytest.approx(kept[2] / kept[1])


def test_one_shot_is_one_step():
    assert schedule_targets(_schedule("kind=one_shot", "final_sparsity=0.4")) == [0.4]


def test_unknown_schedule_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="known: geometric, linear, mac_target, one_shot, targets"):
        SCHEDULES.get("cosine")


def test_quadratic_estimate_solves_seed_003_equation():
    sparsity = quadratic_estimate(unpruned=20, one_sided=30, two_sided=50, mac_target=0.5)
    q = 1 - sparsity
    assert (20 + 30 * q + 50 * q * q) / 100 == pytest.approx(0.5)
    assert quadratic_estimate(0, 100, 0, 0.3) == pytest.approx(0.7)  # all one-sided: linear (ViT case)


@pytest.mark.parametrize("builder", ["resnet18", "mobilenet_v2"])
@pytest.mark.parametrize("target", [0.5, 0.3])
def test_mac_target_lands_within_2_percent(builder, target):
    torch.manual_seed(0)
    model = getattr(torchvision.models, builder)(num_classes=10).eval()
    config = load_config(None, ["pruning.scope=all", "pruning.max_layer_ratio=0.95"]).pruning
    example = torch.randn(1, 3, 32, 32)
    sparsity, ratio = solve_mac_target(lambda m: Pruner(m, example, config), model, 3, 32, target)
    assert abs(ratio - target) <= 0.02 * target
    assert 0 < sparsity < 1
