import pytest
import torch
from timm.layers import BatchNormAct2d
from torch import nn

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader
from prunetune.errors import UserError
from prunetune.pruning.scope import PrunableGroup, build_graph, select_scope
from prunetune.pruning.statistics import channel_axis, collect_stats, stat_points
from prunetune.runtime import resolve_runtime

CPU = resolve_runtime(load_config(None, ["runtime.device=cpu"]).runtime)


def _loader(count=64):
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8)
    return TensorLoader(ImageTensors(images, torch.randint(0, 10, (count,))), 32, torch.device("cpu"),
                        (0.5,) * 3, (0.25,) * 3)


def test_vbp_statistics_are_post_activation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    with torch.no_grad():
        model[1].bias.copy_(torch.tensor([-2.0, -0.5, 0.0, 0.5]))  # the ReLU changes every channel's moments
    graph = build_graph(model, torch.randn(1, 3, 8, 8))
    groups = select_scope(model, graph, "all")
    loader = _loader()
    stats = collect_stats(model, groups, loader, CPU)
    with torch.no_grad():
        images = torch.cat([batch for batch, _ in loader])
        post_activation = model[2](model[1](model[0](images))).transpose(0, 1).flatten(1)
    assert torch.allclose(stats["0"].mean, post_activation.mean(1), atol=1e-5)
    assert torch.allclose(stats["0"].variance, post_activation.var(1, unbiased=False), atol=1e-4)


def _points(model, size=8):
    example = torch.randn(1, 3, size, size)
    graph = build_graph(model.eval(), example)
    groups = select_scope(model, graph, "all")
    return groups, stat_points(model, groups, example)


def test_statistics_skip_a_dropout_between_the_batchnorm_and_the_activation():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Dropout(0.1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    _, points = _points(model)
    assert points["0"] == (model[1], model[3])


def test_statistics_of_a_timm_batchnorm_act_are_its_own_post_activation_output():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), BatchNormAct2d(4, act_layer=nn.ReLU), nn.Conv2d(4, 2, 1))
    groups, points = _points(model)
    assert points["0"] == (model[1], None)
    stats = collect_stats(model, groups, _loader(), CPU)
    assert (stats["0"].mean >= 0).all() and (stats["0"].mean > 0).any()  # after ReLU, not the conv's raw output


def test_statistics_without_an_activation_are_the_batchnorm_output():
    """The documented rule for a producer no activation module follows (a projection conv)."""
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1)).eval()
    groups, points = _points(model)
    assert points["0"] == (model[1], None)
    loader = _loader()
    stats = collect_stats(model, groups, loader, CPU)
    with torch.no_grad():
        images = torch.cat([batch for batch, _ in loader])
        post_bn = model[1](model[0](images)).transpose(0, 1).flatten(1)
    assert torch.allclose(stats["0"].mean, post_bn.mean(1), atol=1e-5)
    assert torch.allclose(stats["0"].variance, post_bn.var(1, unbiased=False), atol=1e-4)


def test_a_producer_that_never_runs_is_named():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    groups, _ = _points(model)
    unused = nn.Conv2d(3, 4, 1)
    ghost = PrunableGroup(groups[0].group, [("ghost", unused)], [])
    with pytest.raises(UserError, match="layer ghost .* does not run"):
        stat_points(model, [ghost], torch.randn(1, 3, 8, 8))


def test_channel_axis_is_last_for_a_linear_on_a_channels_last_map():
    values = torch.zeros(2, 5, 6, 4)
    assert channel_axis(nn.Linear(3, 4), values) == 3
    assert channel_axis(nn.Conv2d(3, 5, 1), values) == 1
