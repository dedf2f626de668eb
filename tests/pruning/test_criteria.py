import pytest
import torch
import torchvision
from torch import nn

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader
from prunetune.errors import UnknownNameError, UserError
from prunetune.models.zoo import tiny_mobilenet
from prunetune.pruning import Pruner
from prunetune.pruning.criteria import CRITERIA, REDUCTIONS, ScoringContext, channel_costs, get_criterion
from prunetune.pruning.scope import build_graph, select_scope
from prunetune.pruning.selection import select_channels
from prunetune.pruning.statistics import collect_stats, stat_points
from prunetune.runtime import resolve_runtime
from prunetune.torch_tools import plain_indices

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
    with torch.no_grad():
        for _, module, _ in groups[0].members:
            if isinstance(module, nn.BatchNorm2d):  # a fresh BN's beta = 0 would hide a missing beta term
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-1.0, 1.0)
    _zero_channel(groups[PLANTED_GROUP], PLANTED_CHANNEL)
    model.train()
    images, labels = next(iter(_loader()))
    nn.functional.cross_entropy(model(images), labels).backward()
    assert _lowest(groups, _criterion("taylor"), ScoringContext()) == (groups[PLANTED_GROUP].name, PLANTED_CHANNEL)
    with torch.no_grad():
        for _, module, _ in groups[0].members:
            if not isinstance(module, nn.BatchNorm2d):
                for parameter in module.parameters():
                    parameter.grad.zero_()
    # With every other gradient zeroed the score is the BNs' |gamma dL/dgamma| + |beta dL/dbeta|
    # alone (up to the group normaliser): both BN terms are scored.
    expected = sum(((dep.target.module.weight * dep.target.module.weight.grad).abs()
                    + (dep.target.module.bias * dep.target.module.bias.grad).abs())[plain_indices(idxs)]
                   for dep, idxs in groups[0].group if isinstance(dep.target.module, nn.BatchNorm2d))
    scores = _criterion("taylor").score(groups[0], ScoringContext())
    torch.testing.assert_close(scores / scores.mean(), expected / expected.mean())


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


@pytest.mark.parametrize("mode, combine", [
    ("additive", lambda base, cost: 0.3 * base + 0.7 * cost),  # alpha * base + (1 - alpha) * c^beta
    ("multiplicative", lambda base, cost: base**0.3 * cost),  # base^alpha * c^beta
])
def test_mac_aware_combines_base_and_cost_with_alpha(tiny, mode, combine):
    model, graph, groups, example = tiny
    context = ScoringContext(costs=channel_costs(model, groups, example))
    group = min(groups, key=lambda g: context.costs[g.name])
    cost = context.costs[group.name] / max(context.costs.values())
    base = _criterion("l1").score(group, context)
    assert cost < 0.9 and base.std() > 0.02  # neither term is constant 1, so alpha shows
    scores = _criterion("mac_aware", mode=mode, alpha=0.3, beta=1.0).score(group, context)
    torch.testing.assert_close(scores, combine(base, cost))


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


def _chain():
    """conv -> BN -> ReLU -> depthwise -> BN -> ReLU -> conv; group "0" couples all five layers."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 2, 1, bias=False)).eval()
    with torch.no_grad():
        for bn in (model[1], model[4]):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-1.0, 1.0)
    example = torch.randn(1, 3, 8, 8)
    model(torch.randn(4, 3, 8, 8)).square().sum().backward()  # gradients for taylor
    group = next(g for g in select_scope(model, build_graph(model, example), "all") if g.name == "0")
    return model, group


def _by_hand(model, criterion):
    """Each member layer's per-channel score, the producer first, then its own BN."""
    conv, bn, depthwise, second_bn, consumer = model[0], model[1], model[3], model[4], model[6]
    if criterion == "bn_gamma":
        return [bn.weight.abs(), second_bn.weight.abs()]
    if criterion == "taylor":
        def s(p):
            return (p * p.grad).abs()
        return [s(conv.weight).sum((1, 2, 3)), s(bn.weight) + s(bn.bias), s(depthwise.weight).sum((1, 2, 3)),
                s(second_bn.weight) + s(second_bn.bias), s(consumer.weight).sum((0, 2, 3))]
    power = 1 if criterion == "l1" else 2
    return [conv.weight.abs().pow(power).sum((1, 2, 3)), bn.weight.abs().pow(power),
            depthwise.weight.abs().pow(power).sum((1, 2, 3)), second_bn.weight.abs().pow(power),
            consumer.weight.abs().pow(power).sum((0, 2, 3))]


def _lamp(scores):
    return torch.stack([v / scores[scores >= v].sum() for v in scores])


BY_HAND = {"mean": lambda s: s.mean(0), "max": lambda s: s.max(0).values, "prod": lambda s: s.prod(0),
           "first": lambda s: s[0]}


def test_the_reductions_are_the_seeds_mean_max_prod_and_first():
    assert REDUCTIONS.names() == ["first", "max", "mean", "prod"]  # seed 003 1.3.1; sum ranked as mean


@pytest.mark.parametrize("reduction", sorted(BY_HAND))
@pytest.mark.parametrize("criterion", ["l1", "l2", "bn_gamma", "lamp", "taylor"])
def test_each_reduction_of_each_criterion_matches_a_hand_computation(criterion, reduction):
    model, group = _chain()
    with torch.no_grad():
        reduced = BY_HAND[reduction](torch.stack(_by_hand(model, criterion)).double())
        expected = _lamp(reduced) if criterion == "lamp" else reduced / reduced.mean()
    config = load_config(None, [f"pruning.criterion={criterion}", f"pruning.group_reduction={reduction}"]).pruning
    torch.testing.assert_close(get_criterion(config).score(group, ScoringContext()), expected.float())


def test_a_registered_reduction_serves_every_criterion():
    model, group = _chain()
    REDUCTIONS.register("min")(lambda stacked: stacked.min(0).values)
    try:
        for criterion in ("l1", "l2", "bn_gamma", "lamp", "taylor"):
            with torch.no_grad():
                reduced = torch.stack(_by_hand(model, criterion)).double().min(0).values
                expected = _lamp(reduced) if criterion == "lamp" else reduced / reduced.mean()
            config = load_config(None, [f"pruning.criterion={criterion}", "pruning.group_reduction=min"]).pruning
            torch.testing.assert_close(get_criterion(config).score(group, ScoringContext()), expected.float())
    finally:
        REDUCTIONS.remove("min")


@pytest.mark.parametrize("name", ["l1", "l2"])
def test_depthwise_weights_count_in_magnitude_scores(tiny, name):
    _, _, groups, _ = tiny
    depthwise = next(m for _, m, _ in groups[0].members if isinstance(m, nn.Conv2d) and m.groups > 1)
    before = _criterion(name).raw(groups[0], ScoringContext())
    with torch.no_grad():
        depthwise.weight[0] *= 100
    after = _criterion(name).raw(groups[0], ScoringContext())
    assert after[0] > before[0] and torch.equal(after[1:], before[1:])


def test_first_on_mobilenet_v3_is_the_expand_convs_own_weights():
    model = torchvision.models.mobilenet_v3_small(num_classes=2).eval()
    example = torch.randn(1, 3, 64, 64)
    group = next(g for g in select_scope(model, build_graph(model, example), "expand")
                 if g.name == "features.9.block.0.0")
    rows = model.features[9].block[0][0].weight.detach().abs().flatten(1).sum(1)
    config = load_config(None, ["pruning.group_reduction=first"]).pruning
    torch.testing.assert_close(get_criterion(config).score(group, ScoringContext()), rows / rows.mean())


def test_an_unknown_reduction_is_refused_when_the_criterion_is_made():
    with pytest.raises(UnknownNameError, match="pruning.group_reduction: unknown group reduction 'gate'; known: first"):
        CRITERIA.get("l1")(group_reduction="gate")


@pytest.mark.parametrize("name", ["l1", "taylor", "vbp", "mac_aware"])
def test_a_criterion_refuses_a_parameter_it_does_not_take(name):
    with pytest.raises(TypeError, match="unexpected keyword argument 'temperature'"):
        CRITERIA.get(name)(temperature=2.0)


def test_mac_aware_takes_its_cost_setting_and_refuses_unknown_modes_and_costs():
    assert _criterion("mac_aware", cost="latency").cost == "latency"
    assert _criterion("mac_aware").cost == "macs"
    with pytest.raises(UserError, match="pruning.mac_aware.cost: 'watts'; allowed: macs, latency"):
        CRITERIA.get("mac_aware")(cost="watts")
    with pytest.raises(UserError, match="pruning.mac_aware.mode: 'addative'; allowed: additive, multiplicative"):
        CRITERIA.get("mac_aware")(mode="addative")


def test_reductions_skip_the_channels_a_layer_does_not_carry():
    stacked = torch.tensor([[1.0, 2.0, 3.0], [4.0, float("nan"), 6.0]], dtype=torch.float64)
    expected = {"mean": [2.5, 2.0, 4.5], "max": [4.0, 2.0, 6.0], "prod": [4.0, 2.0, 18.0], "first": [1.0, 2.0, 3.0]}
    for name, values in expected.items():
        assert REDUCTIONS.get(name)(stacked).tolist() == values, name


def test_vbp_scores_a_ghost_concat_group_by_the_variance_of_its_source_channels():
    import timm

    torch.manual_seed(0)
    model, example = timm.create_model("ghostnet_050", num_classes=10).eval(), torch.randn(1, 3, 32, 32)
    groups = select_scope(model, build_graph(model, example), "all")
    ghost = next(g for g in groups if g.channel_groups == 2)  # [x, depthwise(x)]: twice the producer's channels
    stats = collect_stats(model, [ghost], [(torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.long))], CPU)
    scores = get_criterion(load_config(None, ["pruning.criterion=vbp"]).pruning).score(ghost, ScoringContext(stats))
    half = ghost.channels // 2
    assert scores.shape == (ghost.channels,) and torch.equal(scores[:half], scores[half:])
