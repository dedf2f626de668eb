import copy

import pytest
import timm
import torch
from torch import nn

from prunetune.config import PruningConfig
from prunetune.errors import ModelError
from prunetune.pruning import Pruner
from prunetune.pruning.attention import unsupported_attention
from prunetune.pruning.scope import build_graph, select_scope


def _vit(depth: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", img_size=32, depth=depth, num_classes=10).eval()


def test_timm_vit_qkv_groups_are_three_blocks_per_head():
    model = _vit()
    groups = {g.name: g for g in select_scope(model, build_graph(model, torch.randn(1, 3, 32, 32)), "all")}
    assert groups["blocks.0.attn.qkv"].channel_groups == 3 * 3  # q, k and v of 3 heads
    assert groups["blocks.0.mlp.fc1"].channel_groups == 1


def test_timm_vit_all_scope_cuts_head_dims_and_attention_reads_the_new_widths():
    model, example = _vit(), torch.randn(1, 3, 32, 32)
    pruner = Pruner(model, example, PruningConfig(scope="all", criterion="random"), seed=0)
    pruner.step(0.4)
    for block in model.blocks:
        attn = block.attn
        assert attn.qkv.out_features == 3 * attn.num_heads * attn.head_dim and attn.num_heads == 3
        assert attn.attn_dim == attn.proj.in_features == attn.num_heads * attn.head_dim
        assert attn.scale == attn.head_dim**-0.5
    assert any(block.attn.head_dim < 64 for block in model.blocks)
    with torch.no_grad():
        fused = model(example)
        plain = copy.deepcopy(model)
        for block in plain.blocks:
            block.attn.fused_attn = False  # timm's non-fused path multiplies by attn.scale itself
        assert fused.shape == (1, 10) and torch.allclose(plain(example), fused, atol=1e-5)


def _levit() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("levit_128s", img_size=32, depth=(1, 1, 1), num_classes=10).eval()


def test_an_attention_whose_heads_prunetune_cannot_resplit_refuses_the_scope_in_one_line():
    model = _levit()
    assert {type(m).__name__ for m in unsupported_attention(model).values()} == {"Attention", "AttentionDownsample"}
    with pytest.raises(ModelError, match=r"^model LevitDistilled: scope 'all' cuts layers inside its "
                                         r"Attention/AttentionDownsample modules") as error:
        select_scope(model, build_graph(model, torch.randn(1, 3, 32, 32)), "all")
    message = str(error.value)
    assert "\n" not in message and "pruning.scope 'expand'" in message and "stages.0.blocks.0.attn.qkv.linear" in message


def test_torchvision_vit_blocks_holding_multihead_attention_are_not_refused():
    import torchvision

    model = torchvision.models.vit_b_32(image_size=32, num_classes=10).eval()
    assert unsupported_attention(model) == {}  # EncoderBlock has num_heads but holds an nn.MultiheadAttention


def test_excluding_the_groups_a_refusal_names_leaves_an_all_scope_that_prunes():
    model, example = _levit(), torch.randn(1, 3, 32, 32)
    with pytest.raises(ModelError) as error:
        Pruner(model, example, PruningConfig(scope="all", criterion="random"))
    named = tuple(str(error.value).rsplit("pruning.exclude: [", 1)[1].rstrip("]").split(", "))
    pruner = Pruner(model, example, PruningConfig(scope="all", criterion="random", exclude=named))
    pruner.step(0.3)
    assert model(example).shape == (1, 10) and pruner.sparsity() == pytest.approx(0.3, abs=0.005)
