"""Top-K kernel masks, N:M masks, the stage-1 penalties, effective MACs and the baked model (seed 002)."""

import copy
import io
import math

import pytest
import torch
from torch import nn

from prunetune.config import TkpConfig
from prunetune.models import measure
from prunetune.pruning.kernel_penalty import get_penalty, tail_loss
from prunetune.pruning.kernel_topk import (
    KernelMasks,
    bake,
    carried_metadata,
    masks_from_metadata,
    select_kernel_layers,
    top_k_mask,
)
from prunetune.pruning.semi_structured import holds_two_four, semi_structured

EXAMPLE = torch.zeros(1, 3, 8, 8)


def two_convs() -> nn.Sequential:
    """conv1 3->4 and conv2 4->4, 3x3, padding 1, no bias, on 8x8; a bias-free head."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 8 * 8, 8, bias=False),
                         nn.ReLU(), nn.Linear(8, 2, bias=False))


def masked(model, *overrides, example=EXAMPLE) -> KernelMasks:
    masks = KernelMasks(select_kernel_layers(model, TkpConfig(**dict(overrides)), example))
    masks.compute()
    masks.attach()
    return masks


def nonzeros_per_group(layer) -> torch.Tensor:
    return (layer.groups() != 0).sum(dim=1)


def test_top_k_mask_keeps_exactly_k_per_row_even_among_ties():
    rows = torch.tensor([[0.1, -0.9, 0.3, 0.0], [0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])
    mask = top_k_mask(rows, 2)
    assert mask.sum(dim=1).tolist() == [2, 2, 2]
    assert mask[0].tolist() == [False, True, True, False]


def test_effective_macs_by_hand_on_a_two_conv_model():
    model = two_convs()
    dense = measure(model, 3, 8).macs
    # Dense by hand: conv1 64 positions x 4 x 3 x 9, conv2 64 x 4 x 4 x 9, the two Linear layers 256 x 8 + 8 x 2,
    # and one op per ReLU output (Torch-Pruning's counter), which TKP leaves alone.
    conv1, conv2, fc1, fc2, relus = 64 * 4 * 3 * 9, 64 * 4 * 4 * 9, 256 * 8, 8 * 2, 64 * 4 + 8
    assert dense == conv1 + conv2 + fc1 + fc2 + relus
    masks = masked(model, ("topk", 2))
    assert masks.effective_macs(dense) == conv1 * 2 // 9 + conv2 * 2 // 9 + fc1 + fc2 + relus
    # 2:4 on the hidden Linear (the output Linear is left out by default) halves its products.
    both = masked(two_convs(), ("topk", 1), ("nm", "2:4"))
    assert both.effective_macs(dense) == conv1 // 9 + conv2 // 9 + fc1 // 2 + fc2 + relus


def test_exactly_k_nonzeros_per_kernel_after_masking_and_after_an_adamw_step_with_weight_decay():
    model = two_convs()
    masks = masked(model, ("topk", 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.5)
    for _ in range(3):  # Adam's moments and the decay act on every step
        for layer in masks.layers:
            assert nonzeros_per_group(layer).tolist() == [2] * layer.groups().shape[0]
        optimizer.zero_grad()
        model(torch.randn(5, 3, 8, 8)).square().sum().backward()
        optimizer.step()
    for layer in masks.layers:
        assert nonzeros_per_group(layer).eq(2).all()
        original = layer.module.parametrizations.weight.original
        assert original[~masks.masks[layer.name]].eq(0).all()  # the stored weight stays exactly zero too


def test_masked_positions_get_zero_gradient_and_kept_ones_do_not():
    model = two_convs()
    masks = masked(model, ("topk", 1), ("nm", "2:4"))
    model(torch.randn(4, 3, 8, 8)).square().sum().backward()
    for layer in masks.layers:
        grad = layer.module.parametrizations.weight.original.grad
        mask = masks.masks[layer.name]
        assert grad[~mask].eq(0).all()
        assert grad[mask].ne(0).any()


def test_two_four_pattern_is_exact_in_every_group_of_four_and_stays_after_sgd_with_momentum():
    model = two_convs()
    masks = masked(model, ("nm", "2:4"))
    (linear,) = masks.layers
    assert linear.name == "4" and linear.groups().shape == (8 * 256 // 4, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.randn(3, 3, 8, 8)).sum().backward()
        optimizer.step()
    weight = model[4].weight
    assert (weight != 0).reshape(8, 64, 4).sum(dim=2).eq(2).all()  # 4 consecutive inputs of each output row
    assert holds_two_four(weight)


# One 3x3 kernel worked by hand, K = 2: |w| sorted 0.9 0.5 | 0.4 0.3 0.2 0.1 0.05 0.05 0 (tail after the bar).
KERNEL = [[0.1, -0.5, 0.2], [0.05, 0.9, -0.3], [0.0, 0.4, -0.05]]
TAIL_SQUARES = [0.16, 0.09, 0.04, 0.01, 0.0025, 0.0025, 0.0]
# exp(-j) for j = 0..6, alpha = 1: 1, 0.36788, 0.13534, 0.04979, 0.01832, 0.00674, 0.00248
BY_HAND = {"exponential": 0.16 + 0.09 * 0.3678794 + 0.04 * 0.1353353 + 0.01 * 0.0497871 + 0.0025 * 0.0183156
           + 0.0025 * 0.0067379, "l2": 0.305, "none": 0.0}


@pytest.mark.parametrize("reg_type", ["exponential", "l2", "none"])
def test_the_auxiliary_loss_equals_the_documented_formula_on_a_hand_computed_kernel(reg_type):
    conv = nn.Conv2d(1, 2, 3, bias=False)
    with torch.no_grad():
        conv.weight[0, 0] = torch.tensor(KERNEL)
        conv.weight[1, 0] = torch.tensor([[0.0, 0.7, 0.0], [0.0, 0.0, 0.0], [-0.2, 0.0, 0.0]])  # K-sparse: no tail
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(2, 2))
    layers = select_kernel_layers(model, TkpConfig(topk=2), torch.zeros(1, 1, 3, 3))
    loss = tail_loss(layers, get_penalty(reg_type), alpha=1.0)
    assert float(loss.detach()) == pytest.approx(BY_HAND[reg_type] / 2, abs=1e-6)  # mean over the two kernels
    if reg_type != "none":
        loss.backward()
        grad = conv.weight.grad[0, 0].flatten()
        kept = torch.tensor(KERNEL).flatten().abs().topk(2).indices
        assert grad[kept].eq(0).all() and grad.ne(0).sum() == 6  # the tail only (its 0 stays 0)


def test_exponential_penalty_tends_to_l2_as_alpha_goes_to_zero():
    model = two_convs()
    layers = select_kernel_layers(model, TkpConfig(topk=1), EXAMPLE)
    assert float(tail_loss(layers, get_penalty("exponential"), 0.0)) == pytest.approx(
        float(tail_loss(layers, get_penalty("l2"), 0.0)))


def _tail_share(groups: torch.Tensor) -> float:
    """Share of the squared weights outside each row's largest."""
    total = groups.square().sum()
    return float((total - groups.abs().max(dim=1).values.square().sum()) / total)


def test_the_penalty_shrinks_the_tail_and_leaves_the_top_k_alone():
    model = two_convs()
    layers = select_kernel_layers(model, TkpConfig(topk=1), EXAMPLE)
    before = [layer.groups().detach().clone() for layer in layers]
    optimizer = torch.optim.SGD(model.parameters(), lr=5.0)
    for _ in range(20):
        optimizer.zero_grad()
        tail_loss(layers, get_penalty("exponential"), 3.0).backward()
        optimizer.step()
    for layer, old in zip(layers, before):
        new = layer.groups().detach()
        top = old.abs().argmax(dim=1, keepdim=True)
        assert torch.equal(new.gather(1, top), old.gather(1, top))
        assert _tail_share(new) < 0.5 * _tail_share(old)  # the energy outside the top 1 fell


def test_selection_follows_depthwise_include_and_exclude():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                          nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 5, padding=2), nn.Flatten(), nn.Linear(512, 16),
                          nn.Linear(16, 4))
    example = torch.zeros(1, 3, 8, 8)

    def names(**settings):
        return [layer.name for layer in select_kernel_layers(model, TkpConfig(**settings), example)]

    assert names(topk=2) == ["0", "1", "3"]  # 1x1 never
    assert names(topk=2, depthwise=False) == ["0", "3"]
    assert names(topk=9) == ["3"]  # a 3x3 kernel keeping 9 is untouched
    assert names(topk=2, depthwise=False, include=("1",), exclude=("3",)) == ["0", "1"]
    assert names(nm="2:4") == ["5"]  # the output layer is left out
    assert names(nm="2:4", include=("6",)) == ["5", "6"]
    with pytest.raises(Exception, match="no layer of Sequential to prune"):
        names(topk=25)
    odd = nn.Sequential(nn.Flatten(), nn.Linear(192, 6), nn.Linear(6, 3))
    with pytest.raises(Exception, match="Linear 2 has 6 input features, not a multiple of 4"):
        select_kernel_layers(odd, TkpConfig(nm="2:4", include=("2",)), example)


def test_bake_leaves_a_plain_picklable_module_with_the_zeros_and_the_same_outputs():
    model = two_convs()
    masks = masked(model, ("topk", 2), ("nm", "2:4"))
    images = torch.randn(2, 3, 8, 8)
    expected = model(images)
    plain = bake(copy.deepcopy(model))
    assert [type(m) for m in plain] == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())
    assert torch.equal(plain(images), expected)
    torch.save(plain, io.BytesIO())  # a parametrized module refuses to pickle
    for name, mask in masks.masks.items():
        assert plain.get_submodule(name).weight[~mask].eq(0).all()


def test_masks_survive_the_metadata_round_trip():
    masks = masked(two_convs(), ("topk", 3), ("nm", "1:4"))
    metadata = masks.metadata(1234)
    restored = masks_from_metadata(carried_metadata({**metadata, "step": 2}))
    assert set(restored) == set(masks.masks) == {"0", "2", "4"}
    assert all(torch.equal(restored[name], masks.masks[name].cpu()) for name in restored)
    assert metadata["tkp"]["effective_macs"] == 1234
    assert metadata["tkp"]["layers"]["0"]["pattern"] == "top-3 of 3x3" and metadata["tkp"]["layers"]["4"]["pattern"] == "1:4"
    assert carried_metadata({"step": 2}) == {}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_semi_structured_runs_a_2_4_linear_on_cuda_with_the_dense_result():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 128)).cuda().half()
    masked(model, ("nm", "2:4"), ("include", ("2",)), example=torch.zeros(1, 256, device="cuda", dtype=torch.half))
    model = bake(model).eval()
    inputs = torch.randn(64, 256, device="cuda", dtype=torch.half)
    expected = model(inputs)
    outcome = semi_structured(model)
    assert outcome.converted == ["0", "2"], outcome.skipped
    assert torch.allclose(model(inputs), expected, atol=1e-2, rtol=1e-2)
    assert math.isfinite(float(model(inputs).float().sum()))


def test_a_registered_regulariser_is_validated_listed_and_used_by_the_loss():
    from prunetune.config import load_config
    from prunetune.pruning.kernel_penalty import TailPenalty
    from prunetune.registry import TKP_REGULARISERS

    TKP_REGULARISERS.register("first_only")(TailPenalty("the first coefficient beyond the top K", ("beta",),
                                                        lambda tail, alpha: torch.eye(tail)[0]))
    try:
        assert load_config(None, ["tkp.topk=1", "tkp.reg_type=first_only", "tkp.beta=5"]).tkp.reg_type == "first_only"
        with pytest.raises(Exception, match="alpha set but reg_type first_only does not read it"):
            load_config(None, ["tkp.topk=1", "tkp.reg_type=first_only", "tkp.alpha=1"])
        conv = nn.Conv2d(1, 1, 3, bias=False)
        with torch.no_grad():
            conv.weight[0, 0] = torch.tensor(KERNEL)
        layers = select_kernel_layers(nn.Sequential(conv, nn.Flatten(), nn.Linear(1, 2)),
                                      TkpConfig(topk=2), torch.zeros(1, 1, 3, 3))
        assert float(tail_loss(layers, get_penalty("first_only"), 0.0).detach()) == pytest.approx(TAIL_SQUARES[0])
    finally:
        TKP_REGULARISERS.remove("first_only")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal without a GPU")
def test_semi_structured_refuses_without_cuda_in_one_line():
    from prunetune.errors import UserError

    with pytest.raises(UserError, match="semi-structured 2:4 weights need a CUDA GPU"):
        semi_structured(nn.Linear(8, 8))
