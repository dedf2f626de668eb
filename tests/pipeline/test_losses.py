import math

import pytest
import torch

from prunetune.pipeline.losses import VarianceEntropy, distillation_loss, group_l21


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
    entropy = VarianceEntropy({"x": layer})
    layer.train()
    layer(torch.randn(16, 4, 5, 5))
    uniform = entropy.pop().item()
    x = torch.randn(16, 4, 5, 5) * torch.tensor([10.0, 0.01, 0.01, 0.01]).view(1, 4, 1, 1)
    layer(x)
    concentrated = entropy.pop().item()
    entropy.close()
    assert uniform == pytest.approx(math.log(4), rel=0.05) and concentrated < 0.01
