"""A representative handful of the zoo, through the same case function as the full sweep.

scripts/zoo_sweep.py prunes every torchvision classifier and a list of timm families
(docs/zoo-sweep.md) and takes long; here each model is pruned one-shot at 32 px and must still
run in eval and train mode, give (1, 10) logits (GoogLeNet's auxiliary ones too, in training),
cost fewer MACs and reload from save_pruned with identical outputs.
"""

import copy
import functools
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

SWEEP_FILE = Path(__file__).resolve().parents[2] / "scripts" / "zoo_sweep.py"
SIZE, SPARSITY = 32, 0.3
MODELS = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "regnet_y_400mf",
          "convnext_tiny", "googlenet", "timm:mobilenetv3_small_050", "timm:vit_tiny_patch16_224")
# vbp on convnext_tiny: its statistics sit on Linear outputs in NHWC layout.
CASES = [(name, scope, "l1") for name in MODELS for scope in ("all", "expand")] + [
    ("mobilenet_v3_small", "expand", "vbp"), ("convnext_tiny", "expand", "vbp"), ("resnet18", "all", "mac_aware"),
    ("timm:vit_tiny_patch16_224", "all", "vbp"),
]


def _load_sweep():
    # scripts/ is not a package; loading the file keeps one copy of the case function.
    spec = importlib.util.spec_from_file_location("zoo_sweep", SWEEP_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


zoo = _load_sweep()


@functools.cache
def _pristine(name: str) -> tuple[nn.Module, int]:
    return zoo.build(name, num_classes=10, image_size=SIZE)


@pytest.mark.parametrize(("name", "scope", "criterion"), CASES)
def test_one_shot_pruned_model_runs_costs_less_and_reloads_identically(name, scope, criterion, tmp_path):
    model, size = _pristine(name)
    outcome = zoo.run_case(copy.deepcopy(model), zoo.Case(name, scope, criterion, size, SPARSITY), tmp_path)
    assert outcome.status == zoo.OK, outcome.reason
    assert outcome.channels > 0
    assert outcome.sparsity == pytest.approx(SPARSITY, abs=0.005)  # grouped convs cut in steps of their groups
    assert outcome.mac_ratio < 1 and outcome.params_ratio < 1


def _conv_head(**extra) -> nn.Module:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 16, 3), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    for key, value in extra.items():
        setattr(model, key, value)
    return model.eval()


def test_a_scope_without_channels_is_reported_as_such_not_as_a_pass(tmp_path):
    # Every group here feeds the classifier or starts at the first layer: nothing is "expand".
    outcome = zoo.run_case(_conv_head(), zoo.Case("conv_head", "expand", "l1", 16), tmp_path)
    assert (outcome.status, outcome.channels) == (zoo.NO_CHANNELS, 0)
    assert "no prunable channels in scope 'expand'" in outcome.reason and "for this model (Sequential)" in outcome.reason


def test_a_model_that_cannot_be_saved_whole_fails_at_the_round_trip(tmp_path):
    outcome = zoo.run_case(_conv_head(scale=lambda x: x), zoo.Case("conv_head", "all", "l1", 16), tmp_path)
    assert outcome.status == zoo.FAIL
    assert outcome.reason.startswith("save/load: RunError")
    assert outcome.mac_ratio < 1  # the cut itself worked


def test_a_model_whose_output_changes_shape_fails_the_output_check(tmp_path):
    model = _conv_head()
    model.register_forward_hook(lambda module, inputs, output: torch.cat([output, output], 1))
    outcome = zoo.run_case(model, zoo.Case("conv_head", "all", "l1", 16), tmp_path)
    assert (outcome.status, outcome.reason) == (zoo.FAIL, "check: output (1, 20), expected (1, 10)")


class _HeadsOwner(nn.Module):
    """An attention-like block prunetune does not know: num_heads and its own projections."""

    def __init__(self) -> None:
        super().__init__()
        self.num_heads = 2
        self.q, self.proj = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        return x + self.proj(self.q(x))


def test_a_model_declined_before_any_work_is_refused_with_its_one_line_reason(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), _HeadsOwner(),
                          nn.Linear(8, 10)).eval()
    outcome = zoo.run_case(model, zoo.Case("heads_owner", "all", "l1", 16), tmp_path)
    assert outcome.status == zoo.REFUSED and outcome.mac_ratio is None
    assert outcome.reason.startswith("model Sequential: scope 'all' cuts layers inside its _HeadsOwner modules")
    assert "\n" not in outcome.reason


class _FirstLogitsInTraining(nn.Sequential):
    def forward(self, x):
        logits = super().forward(x)
        return logits[:, :4] if self.training else logits


def test_a_model_whose_train_mode_output_changes_shape_fails_the_train_check(tmp_path):
    model = _FirstLogitsInTraining(*_conv_head()).eval()
    outcome = zoo.run_case(model, zoo.Case("conv_head", "all", "l1", 16), tmp_path)
    assert (outcome.status, outcome.reason) == (zoo.FAIL, "check: train-mode outputs [(2, 4)], expected (2, 10) each")


def test_a_report_section_is_replaced_in_place_and_its_rows_read_back(tmp_path):
    report = tmp_path / "zoo.md"
    report.write_text("# Zoo\n\nCommentary kept as written.\n")
    ok = zoo.Outcome(zoo.Case("a", "all", "l1", 32), zoo.OK, "", 12, 0.3, 0.5, 0.6, 1.5)
    refused = zoo.Outcome(zoo.Case("b", "expand", "vbp", 64), zoo.REFUSED, "model B: no | pipe", 0, None, None, None, 0.2)
    zoo_report = sys.modules["zoo_report"]
    zoo_report.write_section(report, "timm", zoo_report.render_section("timm", ["first run"], [ok]))
    zoo_report.write_section(report, "timm", zoo_report.render_section("timm", ["second run"], [ok, refused]))
    text = report.read_text()
    assert text.startswith("# Zoo\n\nCommentary kept as written.\n") and text.count("## timm") == 1
    assert "second run" in text and "first run" not in text
    assert zoo_report.read_section(report, "timm") == [ok, refused]
