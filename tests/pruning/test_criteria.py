import pytest
import torch
from torch import nn

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader
from prunetune.errors import UnknownNameError
from prunetune.models.zoo import tiny_mobilenet
from prunetune.pruning import Pruner
from prunetune.pruning.criteria import CRITERIA, ScoringContext, channel_costs, get_criterion
from prunetune.pruning.scope import build_graph, select_scope
from prunetune.pruning.selection import select_channels
from prunetune.pruning.statistics import collect_stats, stat_points
from prunetune.runtime import resolve_runtime

PLANTED_GROUP, PLANTED_CHANNEL = 1, 5


def _criterion(name, **mac_aware):
    overrides = [f"pruning.criterion={name}"] + [f"pruning.mac_aware.{k}={v}" for k, v in mac_aware.items()]
    return get_criterion(load_config(None, overrides).pruning)


def _zero_channel(group, channel):
    """Zero every parameter of one channel across the group's layers."""
    with torch.no_grad():
        for dep, idxs in group.group:
            layer, fn = dep.layer, dep.pruning_fn.__name__
            position = group.group[[d for d, _ in group.group].index(dep)].root_idxs.index(channel)
            index = idxs[position]
            if isinstance(layer, nn.Conv2d) and "out" in fn:
                layer.weight[index] = 0
                if layer.bias is not None:
                    layer.bias[index] = 0
            elif isinstance(layer, nn.Conv2d) and "in" in fn:
                layer.weight[:, index] = 0
            elif isinstance(layer, nn.BatchNorm2d):
                layer.weight[index] = 0
                layer.bias[index] = 0


def _lowest(groups, criterion, context):
    scores = {g.name: criterion.score(g, context) for g in groups}
    name, channel = min(((n, int(s.argmin())) for n, s in scores.items()), key=lambda item: scores[item[0]][item[1]])
    return name, channel


def _loader(count=64):
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8)
    return TensorLoader(ImageTensors(images, torch.randint(0, 10, (count,))), 32, torch.device("cpu"),
                        (0.5,) * 3, (0.25,) * 3)


CPU = resolve_runtime(load_config(None, ["runtime.device=cpu"]).runtime)


def test_registry_lists_every_criterion_and_rejects_unknown_ones():
    assert CRITERIA.names() == ["bn_gamma", "l1", "l2", "lamp", "mac_aware", "random", "taylor", "vbp"]
    with pytest.raises(UnknownNameError, match="unknown criterion 'l3'; known: bn_gamma, l1, l2, lamp"):
        CRITERIA.get("l3")


@pytest.mark.parametrize("name", ["l1", "l2", "bn_gamma", "lamp"])
def test_weight_criteria_rank_a_zeroed_channel_lowest(tiny, name):
    model, graph, groups, _ = tiny
    _zero_channel(groups[PLANTED_GROUP], PLANTED_CHANNEL)
    assert _lowest(groups, _criterion(name), ScoringContext()) == (groups[PLANTED_GROUP].name, PLANTED_CHANNEL)


def test_taylor_ranks_a_zeroed_channel_lowest_and_scores_bn(tiny):
    model, graph, groups, example = tiny
    _zero_channel(groups[PLANTED_GROUP], PLANTED_CHANNEL)
    model.train()
    images, labels = next(iter(_loader()))
    nn.functional.cross_entropy(model(images), labels).backward()
    assert _lowest(groups, _criterion("taylor"), ScoringContext()) == (groups[PLANTED_GROUP].name, PLANTED_CHANNEL)
    bn = next(m for _, m, side in groups[0].members if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        for _, module, _ in groups[0].members:
            if not isinstance(module, nn.BatchNorm2d) and module.weight.grad is not None:
                module.weight.grad.zero_()
    assert _criterion("taylor").score(groups[0], ScoringContext()).sum() > 0  # BN alone still scores
    assert bn.weight.grad is not None


def test_vbp_ranks_a_constant_activation_lowest_though_its_weights_are_large(tiny):
    model, graph, groups, example = tiny
    group = groups[PLANTED_GROUP]
    bn, activation = stat_points(model, groups, example)[group.name]
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(activation, nn.Hardswish)
    with torch.no_grad():
        bn.weight[PLANTED_CHANNEL] = 0.0  # post-BN output is the constant beta
        bn.bias[PLANTED_CHANNEL] = 1.0
        group.producers[0][1].weight[PLANTED_CHANNEL] *= 10
    stats = collect_stats(model, groups, _loader(), CPU)
    assert stats[group.name].variance[PLANTED_CHANNEL] < 1e-8
    assert _lowest(groups, _criterion("vbp"), ScoringContext(stats=stats)) == (group.name, PLANTED_CHANNEL)
    assert _lowest(groups, _criterion("l1"), ScoringContext()) != (group.name, PLANTED_CHANNEL)


def test_random_is_reproducible_for_a_seed(tiny):
    _, _, groups, _ = tiny
    first = _criterion("random").score(groups[0], ScoringContext(generator=torch.Generator().manual_seed(3)))
    again = _criterion("random").score(groups[0], ScoringContext(generator=torch.Generator().manual_seed(3)))
    assert torch.equal(first, again) and first.std() > 0


def _macs_removed(groups, costs, criterion, context, original):
    scores = {g.name: criterion.score(g, context) for g in groups}
    selection = select_channels(groups, scores, 0.3, original)
    return sum(costs[name] * len(idxs) for name, idxs in selection.remove.items())


def test_mac_aware_beta_sign_moves_the_cut_towards_or_away_from_costly_channels(tiny):
    model, graph, groups, example = tiny
    costs = channel_costs(model, groups, example)
    assert len(set(costs.values())) > 1
    context = ScoringContext(costs=costs)
    original = {g.name: g.channels for g in groups}
    neutral = _macs_removed(groups, costs, _criterion("mac_aware", beta=0.0), context, original)
    costly_first = _macs_removed(groups, costs, _criterion("mac_aware", beta=-2.0), context, original)
    cheap_first = _macs_removed(groups, costs, _criterion("mac_aware", beta=2.0), context, original)
    assert costly_first > neutral > cheap_first
    plain = {g.name: _criterion("l1").score(g, context) for g in groups}
    wrapped = {g.name: _criterion("mac_aware", beta=0.0).score(g, context) for g in groups}
    assert all(torch.allclose(plain[k], wrapped[k]) for k in plain)  # beta 0 is the base criterion


def test_mac_aware_additive_mode_mixes_base_and_cost(tiny):
    model, graph, groups, example = tiny
    context = ScoringContext(costs=channel_costs(model, groups, example))
    scores = _criterion("mac_aware", mode="additive", alpha=0.0, beta=1.0).score(groups[0], context)
    expected = context.costs[groups[0].name] / max(context.costs.values())
    assert torch.allclose(scores, torch.full_like(scores, expected))


def test_latency_costs_are_each_member_layers_time_per_channel():
    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.Flatten(), nn.LazyLinear(10)).eval()
    example = torch.randn(1, 3, 8, 8)
    model(example)
    graph = build_graph(model, example)
    group = next(g for g in select_scope(model, graph, "all") if g.name == "0")
    fake = {model[0]: 8.0, model[3]: 4.0, model[6]: 2.0, model[8]: 1.0}
    cost = channel_costs(model, [group], example, latencies=fake)[group.name]
    # expand conv out side 8/8, depthwise counted once 4/8, consumer conv in side 2/8
    assert cost == pytest.approx(8 / 8 + 4 / 8 + 2 / 8)



def test_mac_aware_with_latency_cost_scores_every_channel_of_a_real_model():
    config = load_config(None, ["pruning.criterion=mac_aware", "pruning.mac_aware.cost=latency",
                                "pruning.mac_aware.beta=-1.0", "latency.repeats=2"]).pruning
    model = tiny_mobilenet().eval()
    pruner = Pruner(model, torch.randn(1, 3, 32, 32), config)
    scores = pruner.scores()
    assert set(scores) == {g.name for g in pruner.groups()}
    assert all(torch.isfinite(s).all() and len(s) == g.channels for g, s in zip(pruner.groups(), scores.values()))
