import math

import pytest
import torch

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader
from prunetune.pipeline import distillation_loss, recovery_lr
from prunetune.pipeline import recovery as recovery_module
from prunetune.pipeline.losses import VarianceEntropy, group_l21
from prunetune.pipeline.recovery import make_loss, recover
from prunetune.runtime import resolve_runtime

CPU = resolve_runtime(load_config(None, ["runtime.device=cpu"]).runtime)


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


def test_lr_switches_to_lr_high_exactly_at_the_threshold():
    recovery = load_config(None, ["recovery.lr=1e-4", "recovery.lr_high=3e-5", "recovery.lr_high_threshold=0.21"]).recovery
    assert recovery_lr(recovery, 0.20) == 1e-4
    assert recovery_lr(recovery, 0.2099999) == 1e-4
    assert recovery_lr(recovery, 0.21) == 3e-5
    assert recovery_lr(recovery, 0.80) == 3e-5
    assert recovery_lr(load_config(None).recovery, 0.9) == load_config(None).recovery.lr  # no threshold: lr


def _loader(count=32):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, 8, 8), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 3, (count,), generator=generator)
    return TensorLoader(ImageTensors(images, labels), 8, torch.device("cpu"), (0.5,) * 3, (0.25,) * 3)


def test_patience_stops_and_restores_the_best_epochs_weights(monkeypatch):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    scripted = iter([0.5, 0.7, 0.6, 0.65, 0.9])  # best at epoch 2, then two epochs without a new best
    monkeypatch.setattr(recovery_module, "evaluate", lambda *a, **k: type("R", (), {"accuracy": next(scripted)}))
    states = {}

    def remember(record):
        states[record["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    recovery = load_config(None, ["recovery.epochs=5", "recovery.patience=2", "recovery.lr=0.5",
                                  "recovery.optimizer=sgd"]).recovery
    loss = make_loss(model, 0.0, 1.0)
    result = recover(model, loss, _loader(), _loader(), CPU, recovery, 0.5, start_accuracy=0.4, on_epoch=remember)
    assert result.epochs_run == 4 and result.best_epoch == 2 and result.accuracy == 0.7
    assert not torch.equal(states[2]["1.weight"], states[4]["1.weight"])  # training did move the weights
    for name, value in model.state_dict().items():
        assert torch.equal(value, states[2][name])


def test_recovery_never_leaves_a_step_worse_than_it_found_it(monkeypatch):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    monkeypatch.setattr(recovery_module, "evaluate", lambda *a, **k: type("R", (), {"accuracy": 0.1}))
    recovery = load_config(None, ["recovery.epochs=2", "recovery.lr=0.5", "recovery.optimizer=sgd"]).recovery
    result = recover(model, make_loss(model, 0.0, 1.0), _loader(), _loader(), CPU, recovery, 0.1, start_accuracy=0.3)
    assert result.best_epoch == 0 and result.accuracy == 0.3
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


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
