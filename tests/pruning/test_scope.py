import pytest
import torch
import torchvision
from torch import nn

from prunetune.models.zoo import tiny_resnet
from prunetune.pruning.scope import build_graph, select_scope


def _scope(model, size, scope="expand", **patterns):
    model.eval()
    graph = build_graph(model, torch.randn(1, 3, size, size))
    return graph, select_scope(model, graph, scope, **patterns)


def test_mobilenet_v3_small_expand_scope_has_2440_channels_in_ten_expand_convs():
    _, groups = _scope(torchvision.models.mobilenet_v3_small(num_classes=2), 96)
    assert sum(g.channels for g in groups) == 2440 and len(groups) == 10
    assert all(g.name.endswith("block.0.0") for g in groups)  # the expand convs, SE gates coupled in


def test_resnet_expand_scope_is_the_inner_block_convs():
    _, groups = _scope(torchvision.models.resnet18(num_classes=10), 32)
    assert sorted(g.name for g in groups) == sorted(f"layer{s}.{b}.conv1" for s in range(1, 5) for b in range(2))
    _, groups = _scope(torchvision.models.resnet50(num_classes=10), 32)
    assert len(groups) == 32 and all(g.name.rsplit(".", 1)[1] in ("conv1", "conv2") for g in groups)


def test_all_scope_adds_stream_groups_but_never_the_classifier_output():
    model = torchvision.models.mobilenet_v3_small(num_classes=2)
    _, expand = _scope(model, 96)
    _, every = _scope(model, 96, "all")
    assert {g.name for g in expand} < {g.name for g in every}
    assert all(g.channels != 2 for g in every)


def test_patterns_override_the_scope():
    model = tiny_resnet()
    _, groups = _scope(model, 32, include=("0.0",), exclude=("3.*",))
    assert sorted(g.name for g in groups) == ["0.0", "1.conv1.0", "2.conv1.0"]


def test_graph_build_keeps_train_mode():
    model = tiny_resnet().train()
    build_graph(model, torch.randn(1, 3, 16, 16))
    assert model.training


class _TokenMLP(nn.Module):
    """A conv stem, then pre-norm MLP blocks on (N, tokens, C), as ViT / Swin / ConvNeXt apply Linear."""

    def __init__(self, width=8, hidden=32, depth=2):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 4, 4)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(),
                                                  nn.Linear(hidden, width)) for _ in range(depth))
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = self.stem(x).flatten(2).transpose(1, 2)
        for block in self.blocks:
            x = x + block(x)
        return self.head(x.mean(1))


def test_expand_scope_takes_the_hidden_dim_of_linear_blocks_on_token_input():
    _, groups = _scope(_TokenMLP(), 16)
    assert sorted(g.name for g in groups) == ["blocks.0.1", "blocks.1.1"]


def test_a_model_torch_pruning_cannot_trace_gives_a_clear_error():
    from prunetune.errors import ModelError

    model = torchvision.models.shufflenet_v2_x0_5(num_classes=10).train()
    with pytest.raises(ModelError, match="ShuffleNetV2.*cannot be pruned structurally"):
        build_graph(model, torch.randn(1, 3, 64, 64))
    assert model.training
