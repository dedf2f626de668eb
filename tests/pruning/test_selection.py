import torch
import torchvision
from torch import nn

from prunetune.config import load_config
from prunetune.pruning.criteria import ScoringContext, get_criterion
from prunetune.pruning.scope import build_graph, select_scope
from prunetune.pruning.selection import select_channels
from prunetune.pruning.surgery import remove_channels


def _scope(model, size, scope="expand", **patterns):
    model.eval()
    graph = build_graph(model, torch.randn(1, 3, size, size))
    return graph, select_scope(model, graph, scope, **patterns)


def test_every_target_between_5_and_90_percent_is_hit_exactly_on_mobilenet_v3_small():
    model = torchvision.models.mobilenet_v3_small(num_classes=2).eval()
    graph, groups = _scope(model, 96)
    original = {g.name: g.channels for g in groups}
    criterion = get_criterion(load_config(None).pruning)
    scores = {g.name: criterion.score(g, ScoringContext()) for g in groups}
    for percent in range(5, 91):
        selection = select_channels(groups, scores, percent / 100, original, max_layer_ratio=0.95)
        assert selection.removed_after == round(percent / 100 * 2440), percent
    first = select_channels(groups, scores, 0.10, original)
    assert sum(len(v) for v in first.remove.values()) == 244



def test_cumulative_targets_count_from_the_original_channels():
    model = torchvision.models.mobilenet_v3_small(num_classes=2).eval()
    graph, groups = _scope(model, 96)
    original = {g.name: g.channels for g in groups}
    criterion = get_criterion(load_config(None).pruning)
    for target, expected_total in ((0.10, 244), (0.15, 366), (0.50, 1220)):
        groups = select_scope(model, graph, "expand")
        scores = {g.name: criterion.score(g, ScoringContext()) for g in groups}
        remove_channels(graph, groups, select_channels(groups, scores, target, original, max_layer_ratio=0.95))
        remaining = sum(g.channels for g in select_scope(model, graph, "expand"))
        assert 2440 - remaining == expected_total
    assert model(torch.randn(2, 3, 96, 96)).shape == (2, 2)



def test_floor_never_empties_a_group_and_round_to_keeps_multiples(tiny):
    model, graph, groups, _ = tiny
    original = {g.name: g.channels for g in groups}
    scores = {g.name: torch.arange(g.channels, dtype=torch.float) for g in groups}
    selection = select_channels(groups, scores, 0.99, original, max_layer_ratio=1.0)
    for group in groups:
        assert group.channels - len(selection.remove.get(group.name, [])) >= 1
    selection = select_channels(groups, scores, 0.5, original, max_layer_ratio=0.8, round_to=4)
    for group in groups:
        kept = group.channels - len(selection.remove.get(group.name, []))
        assert kept % 4 == 0 and kept >= 0.2 * group.channels
    assert abs(selection.removed_after - round(0.5 * sum(original.values()))) <= 4



def test_max_layer_ratio_caps_each_group(tiny):
    model, graph, groups, _ = tiny
    original = {g.name: g.channels for g in groups}
    scores = {g.name: torch.rand(g.channels) for g in groups}
    selection = select_channels(groups, scores, 0.9, original, max_layer_ratio=0.5)
    assert all(len(v) <= 0.5 * original[k] for k, v in selection.remove.items())



def test_grouped_conv_loses_the_same_positions_in_every_block():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2),
                          nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    graph, groups = _scope(model, 8, "all")
    group = next(g for g in groups if g.name == "0")
    assert group.channel_groups == 2
    # Channel-wise the two lowest are 0 and 5 (a cut TP cannot make); position 1 has the lowest mean.
    scores = {g.name: torch.tensor([0.0, 2, 5, 5, 9, 1, 5, 5]) if g is group else torch.full((g.channels,), 9.0)
              for g in groups}
    selection = select_channels(groups, scores, 0.125, {g.name: g.channels for g in groups})
    assert selection.remove == {"0": [1, 5]}  # position 1 of both blocks of 4
    remove_channels(graph, groups, selection)
    assert model(torch.randn(1, 3, 8, 8)).shape == (1, 4, 6, 6)



def test_grouped_conv_keeps_two_positions_per_block_so_it_never_turns_depthwise():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=2), nn.ReLU(), nn.Conv2d(8, 4, 1))
    graph, groups = _scope(model, 8, "all")
    scores = {g.name: torch.rand(g.channels) for g in groups}
    selection = select_channels(groups, scores, 0.9, {g.name: g.channels for g in groups}, max_layer_ratio=1.0)
    assert {name: len(idxs) for name, idxs in selection.remove.items()} == {"0": 4, "2": 4}  # 2 of 4 per block



def test_vit_residual_stream_keeps_whole_heads_and_still_runs():
    model = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=4,
                                                 hidden_dim=64, mlp_dim=128, num_classes=10)
    graph, groups = _scope(model, 32, "all")
    stream = next(g for g in groups if g.name == "conv_proj")
    assert stream.channel_step == 4
    # The stream scores lowest, so a channel-wise pick would take 30 of its 64 channels.
    scores = {g.name: torch.rand(g.channels) - (10.0 if g is stream else 0.0) for g in groups}
    selection = select_channels(groups, scores, 0.3, {g.name: g.channels for g in groups})
    assert len(selection.remove["conv_proj"]) % 4 == 0
    remove_channels(graph, groups, selection)
    assert model.hidden_dim == model.conv_proj.out_channels < 64
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_a_group_holding_a_depthwise_conv_keeps_two_channels_so_the_scope_count_holds_after_the_cut():
    # With one channel left a depthwise conv is a plain conv (groups == 1) to Torch-Pruning:
    # its output would leave the group and turn up as a group of its own (GhostNet's first block).
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 3, groups=4), nn.Conv2d(4, 6, 1), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(6, 10))
    graph, groups = _scope(model, 8, "all")
    original = {g.name: g.channels for g in groups}
    scores = {g.name: torch.arange(g.channels, dtype=torch.float) + (0 if g.name == "0" else 100) for g in groups}
    selection = select_channels(groups, scores, 0.3, original)
    assert len(selection.remove["0"]) == 2 and selection.removed_after == 3
    remove_channels(graph, groups, selection)
    assert sorted((g.name, g.channels) for g in select_scope(model, graph, "all")) == [("0", 2), ("2", 5)]
