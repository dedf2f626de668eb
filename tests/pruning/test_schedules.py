import copy

import pytest
import torch
import torchvision
from torch import nn

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader
from prunetune.errors import UnknownNameError
from prunetune.models.complexity import measure
from prunetune.models.zoo import tiny_mobilenet
from prunetune.pruning.pruner import Pruner
from prunetune.pruning.schedules import (SCHEDULES, mac_split, quadratic_estimate, schedule_targets,
                                         solve_mac_target)
from prunetune.pruning.scope import build_graph, select_scope
from prunetune.pruning.statistics import collect_gradients, collect_stats
from prunetune.runtime import resolve_runtime


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
    with pytest.raises(UnknownNameError, match="known: geometric, linear, mac_target, none, one_shot, targets"):
        SCHEDULES.get("cosine")


def test_quadratic_estimate_solves_seed_003_equation():
    sparsity = quadratic_estimate(unpruned=20, one_sided=30, two_sided=50, mac_target=0.5)
    q = 1 - sparsity
    assert (20 + 30 * q + 50 * q * q) / 100 == pytest.approx(0.5)
    assert quadratic_estimate(0, 100, 0, 0.3) == pytest.approx(0.7)  # all one-sided: linear (ViT case)


def test_quadratic_estimate_of_an_unreachable_target_is_the_largest_cut():
    # U / T = 0.5: no keep ratio reaches 0.3 (a negative discriminant, once a complex number)
    assert quadratic_estimate(unpruned=50, one_sided=10, two_sided=40, mac_target=0.3) == 1.0


@pytest.mark.parametrize("builder", ["resnet18", "mobilenet_v2"])
@pytest.mark.parametrize("target", [0.5, 0.3])
def test_mac_target_lands_within_2_percent(builder, target):
    torch.manual_seed(0)
    model = getattr(torchvision.models, builder)(num_classes=10).eval()
    config = load_config(None, ["pruning.scope=all", "pruning.max_layer_ratio=0.95"]).pruning
    example = torch.randn(1, 3, 32, 32)
    scores = Pruner(model, example, config).scores()
    sparsity, ratio = solve_mac_target(lambda m: Pruner(m, example, config), model, 3, 32, target, scores)
    assert abs(ratio - target) <= 0.02 * target
    assert 0 < sparsity < 1


def _loader(count=64):
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8)
    return TensorLoader(ImageTensors(images, torch.randint(0, 10, (count,))), 32, torch.device("cpu"),
                        (0.5,) * 3, (0.25,) * 3)


def _dense_scores(model, pruner):
    """Score the dense model as the pipeline does: statistics and gradients as the criterion needs."""
    loader, runtime = _loader(), resolve_runtime(load_config(None, ["runtime.device=cpu"]).runtime)
    stats = collect_stats(model, pruner.groups(), loader, runtime) if pruner.criterion.needs_stats else None
    if pruner.criterion.needs_gradients:
        collect_gradients(model, loader, runtime)
    scores = pruner.scores(stats)
    model.zero_grad(set_to_none=True)
    return scores


@pytest.mark.parametrize("criterion", ["taylor", "vbp"])
def test_mac_target_solves_for_criteria_whose_scores_need_the_real_model(criterion):
    torch.manual_seed(0)
    model = tiny_mobilenet(num_classes=10, width=8).eval()
    config = load_config(None, [f"pruning.criterion={criterion}", "pruning.scope=all"]).pruning
    example = torch.randn(1, 3, 32, 32)
    scores = _dense_scores(model, Pruner(model, example, config))
    sparsity, ratio = solve_mac_target(lambda m: Pruner(m, example, config), model, 3, 32, 0.6, scores)
    assert abs(ratio - 0.6) <= 0.01 * 0.6 and 0 < sparsity < 1
    cut = copy.deepcopy(model)
    Pruner(cut, example, config).step(sparsity, scores=scores)
    assert measure(cut, 3, 32).macs / measure(model, 3, 32).macs == pytest.approx(ratio)  # the cut it reported


def test_mac_target_solver_starts_from_the_quadratic_estimate():
    torch.manual_seed(0)
    model = tiny_mobilenet(num_classes=10, width=8).eval()
    config = load_config(None, ["pruning.scope=all"]).pruning
    example = torch.randn(1, 3, 32, 32)
    pruner = Pruner(model, example, config)
    tried = []

    def recording(copy_of_model):
        trial = Pruner(copy_of_model, example, config)
        step = trial.step
        trial.step = lambda sparsity, **kw: (tried.append(sparsity), step(sparsity, **kw))[1]
        return trial

    solve_mac_target(recording, model, 3, 32, 0.6, pruner.scores())
    assert tried[0] == pytest.approx(quadratic_estimate(*mac_split(model, pruner.groups(), example), 0.6))


def test_mac_split_counts_a_depthwise_conv_once_and_a_conv_between_two_cut_groups_twice():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.ReLU(),
                          nn.Conv2d(4, 6, 1), nn.ReLU(), nn.Conv2d(6, 2, 1)).eval()
    example = torch.randn(1, 3, 8, 8)
    groups = select_scope(model, build_graph(model, example), "all")
    unpruned, one_sided, two_sided = mac_split(model, groups, example)
    positions = 64
    # conv 0: out cut (3*4), depthwise: once (4*9), conv 4: in and out cut (4*6), conv 6: in cut (6*2)
    assert one_sided == positions * (3 * 4 + 4 * 9 + 6 * 2)
    assert two_sided == positions * 4 * 6 and unpruned == 0
