import torch

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader
from prunetune.pipeline import recovery_lr
from prunetune.pipeline import recovery as recovery_module
from prunetune.pipeline.recovery import make_loss, recover
from prunetune.runtime import resolve_runtime

CPU = resolve_runtime(load_config(None, ["runtime.device=cpu"]).runtime)


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
