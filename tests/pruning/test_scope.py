from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from prunetune.config import load_config
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


def test_the_seed001_example_excludes_two_early_blocks_to_count_its_2280_channels_in_eight_groups():
    # Seed 001 counted 2280 on the same model (2 classes, 96x96); the example's patterns must give that.
    exclude = load_config(Path(__file__).parents[2] / "examples" / "seed001_run6.yaml").pruning.exclude
    _, groups = _scope(torchvision.models.mobilenet_v3_small(num_classes=2), 96, exclude=exclude)
    assert sum(g.channels for g in groups) == 2280 and len(groups) == 8
    assert not any(g.name.startswith(("features.2.", "features.3.")) for g in groups)


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


def _googlenet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.googlenet(num_classes=10, init_weights=False).eval()  # aux_logits: True by default


def test_googlenet_groups_cut_the_inputs_of_its_auxiliary_heads_and_nothing_inside_them():
    # The graph is traced in train mode, where GoogLeNet runs aux1 / aux2; in eval they are skipped.
    _, groups = _scope(_googlenet(), 32, "all")
    readers = {name for g in groups for name, _, side in g.members if side == "in" and name.startswith("aux")}
    assert readers == {"aux1.conv.conv", "aux2.conv.conv"}
    assert not any(name.startswith("aux") for g in groups for name, _ in g.producers)


def test_a_googlenet_cut_in_all_scope_still_trains_with_its_auxiliary_classifiers():
    from prunetune.config import PruningConfig
    from prunetune.pruning import Pruner

    model = _googlenet()
    Pruner(model, torch.randn(1, 3, 32, 32), PruningConfig(scope="all", criterion="random")).step(0.3)
    assert model.aux1.conv.conv.in_channels < 512
    output = model.train()(torch.randn(2, 3, 32, 32))
    assert isinstance(output, torchvision.models.GoogLeNetOutputs)
    assert [tuple(t.shape) for t in output] == [(2, 10)] * 3


def test_a_train_mode_forward_that_fails_at_the_input_size_is_a_one_line_model_error():
    from prunetune.errors import ModelError

    model = torchvision.models.inception_v3(num_classes=10, init_weights=False).eval()  # aux head: 299 px
    with pytest.raises(ModelError, match=r"^model Inception3: its train-mode forward fails on an input of shape "
                                         r"\(1, 3, 96, 96\) \(RuntimeError: .*aux_logits: false") as error:
        build_graph(model, torch.randn(1, 3, 96, 96))
    assert "\n" not in str(error.value) and not model.training


def test_ghostnet_concat_of_a_map_and_its_depthwise_image_is_cut_in_pairs():
    import timm

    from prunetune.config import PruningConfig
    from prunetune.pruning import Pruner

    torch.manual_seed(0)
    model, example = timm.create_model("ghostnet_050", num_classes=10).eval(), torch.randn(1, 3, 32, 32)
    pruner = Pruner(model, example, PruningConfig(scope="all", criterion="random"))
    ghost = next(g for g in pruner.groups() if g.name == "blocks.1.0.ghost2.primary_conv.0")
    assert (ghost.channels, ghost.channel_groups) == (2 * ghost.producers[0][1].out_channels, 2)
    pruner.step(0.3)
    assert model(example).shape == (1, 10)
    assert pruner.sparsity() == pytest.approx(0.3, abs=0.01)


def test_levit_expand_scope_finds_the_mlp_hidden_channels_behind_its_batchnorm1d_reshapes():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("levit_128s", img_size=32, depth=(1, 1, 1), num_classes=10).eval()
    _, groups = _scope(model, 32)
    # LinearNorm normalises with bn(x.flatten(0, 1)).reshape_as(x): tokens folded, channels kept.
    assert len(groups) == 5 and all(g.name.endswith(".mlp.ln1.linear") for g in groups)


class _TwoHeads(nn.Module):
    """Logits and a second classifier's logits in eval too; the second head registered first."""

    def __init__(self):
        super().__init__()
        self.stem, self.side = nn.Conv2d(3, 8, 3), nn.Linear(8, 10)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        features = self.stem(x).mean((2, 3))
        return self.fc(features), self.side(features)


def test_every_layer_emitting_a_model_output_keeps_its_channels():
    _, groups = _scope(_TwoHeads(), 8, "all")
    assert [g.name for g in groups] == ["stem"]
