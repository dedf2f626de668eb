import math

import pytest
import torch

from prunetune.pipeline.losses import VarianceEntropy, distillation_loss, group_l21
from prunetune.pruning.scope import build_graph, select_scope
from prunetune.pruning.statistics import stat_points


def test_distillation_loss_equals_the_formula_on_fixed_logits():
    student = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
    teacher = torch.tensor([[1.0, 1.0, 0.0], [-2.0, 0.5, 2.5]])
    labels = torch.tensor([0, 2])
    alpha, temperature = 0.3, 4.0
    kl = 0.0
    for s, t in zip(student.tolist(), teacher.tolist()):
        p = [math.exp(v / temperature) for v in t]
        q = [math.exp(v / temperature) for v in s]
        p, q = [v / sum(p) for v in p], [v / sum(q) for v in q]
        kl += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    ce = 0.0
    for s, label in zip(student.tolist(), labels.tolist()):
        ce += -math.log(math.exp(s[label]) / sum(math.exp(v) for v in s))
    expected = alpha * temperature**2 * kl / 2 + (1 - alpha) * ce / 2
    assert distillation_loss(student, teacher, labels, alpha, temperature).item() == pytest.approx(expected, rel=1e-6)
    assert distillation_loss(student, teacher, labels, 0.0, temperature).item() == pytest.approx(ce / 2, rel=1e-6)



def test_group_l21_is_the_sum_of_output_channel_norms():
    conv = torch.nn.Conv2d(2, 3, 3)
    expected = sum(conv.weight[i].flatten().norm() for i in range(3))
    assert group_l21([conv]).item() == pytest.approx(expected.item())



def test_variance_entropy_is_low_when_variance_sits_in_one_channel():
    layer = torch.nn.Identity()
    entropy = VarianceEntropy({"x": (layer, None)})
    layer.train()
    layer(torch.randn(16, 4, 5, 5))
    uniform = entropy.pop().item()
    x = torch.randn(16, 4, 5, 5) * torch.tensor([10.0, 0.01, 0.01, 0.01]).view(1, 4, 1, 1)
    layer(x)
    concentrated = entropy.pop().item()
    entropy.close()
    assert uniform == pytest.approx(math.log(4), rel=0.05) and concentrated < 0.01


def _entropy_of(model, entropy, x):
    model(x)
    return entropy.pop().item()


def test_variance_entropy_ignores_conv_rows_rescaled_before_their_batchnorm():
    """VBP scores the post-BN, post-activation output; rescaling a conv row does not move it."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                torch.nn.Conv2d(4, 2, 1))
    example = torch.randn(1, 3, 8, 8)
    groups = select_scope(model, build_graph(model.eval(), example), "all")
    entropy = VarianceEntropy(stat_points(model, groups, example))
    model.train()
    x = torch.randn(16, 3, 8, 8)
    before = _entropy_of(model, entropy, x)
    with torch.no_grad():
        model[0].weight[0] *= 10
    after = _entropy_of(model, entropy, x)
    entropy.close()
    assert after == pytest.approx(before, rel=1e-4)


def test_variance_entropy_of_a_linear_on_a_channels_last_map_uses_the_last_axis():
    linear = torch.nn.Linear(3, 4)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[10.0, 10.0, 10.0], [0.01, 0, 0], [0, 0.01, 0], [0, 0, 0.01]]))
    entropy = VarianceEntropy({"fc": (linear, None)})
    linear.train()
    concentrated = _entropy_of(linear, entropy, torch.randn(8, 5, 6, 3))  # (N, H, W, C): 4 channels, H = 5
    entropy.close()
    assert concentrated < 0.01  # over the 4 output channels; over H (5 rows alike) it would be near log 5


def test_a_model_copied_while_variance_entropy_is_detached_carries_no_hook():
    import copy

    layer = torch.nn.Linear(4, 3).train()
    entropy = VarianceEntropy({"x": (layer, None)})
    with entropy.detached():
        copied = copy.deepcopy(layer)
    copied(torch.randn(8, 4))
    assert entropy.pop().item() == 0.0 and not copied._forward_hooks  # the copy records nowhere
    layer(torch.randn(8, 4))
    assert entropy.pop().item() > 0.0  # reattached on the original
