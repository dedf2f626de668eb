"""The TKP stage in the pipeline: one more row, its saved model, alone or after the channel schedule."""

import math

import pandas as pd
import pytest
import torch
from torch import nn

from prunetune.baseline import prepare_baseline
from prunetune.models import measure
from prunetune.models.complexity import Complexity
from prunetune.pipeline import kernel_stage, run
from prunetune.pipeline.recovery import RecoveryResult
from prunetune.pipeline.rows import RunResult, StepRow
from prunetune.pruning import load_pruned
from prunetune.pruning.kernel_topk import masks_from_metadata
from prunetune.training import evaluate

TKP = ("tkp.topk=2", "tkp.stage1_epochs=1", "tkp.stage2_epochs=1", "tkp.stage1_lr=1e-3", "tkp.stage2_lr=1e-3",
       "tkp.beta=10", "baseline.lr=0.1", "baseline.epochs=3", "recovery.epochs=1")


def _val_accuracy(config, model) -> float:
    baseline = prepare_baseline(config)  # reused: the run's own val split
    return evaluate(baseline.runtime.prepare(model), baseline.loaders.val, baseline.runtime).accuracy


def _products_with_zero_weights(model: nn.Module, channels: int, size: int) -> int:
    """Counted independently of the pipeline: each conv's zero weights times its output positions."""
    found = []
    hooks = [m.register_forward_hook(lambda m, i, o: found.append(int((m.weight == 0).sum()) * o.shape[2] * o.shape[3]))
             for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, channels, size, size))
    for hook in hooks:
        hook.remove()
    return sum(found)


def test_tkp_after_the_schedule_is_one_more_row_whose_saved_model_keeps_exactly_k_per_kernel(tiny_job, tmp_path):
    config = tiny_job(*TKP, "pruning.scope=all", "pruning.schedule.targets=[0.3]", "stop.min_accuracy=0.0")
    rows = []
    run(config, report=rows.append, directory=tmp_path / "run")
    assert [(r["step"], r["phase"]) for r in rows] == [(1, "prune"), (2, "tkp")]
    cut, tkp = rows
    assert (tkp["macs"], tkp["params"], tkp["target_sparsity"]) == (cut["macs"], cut["params"], 0.3)
    assert cut["effective_macs"] == cut["macs"] and cut["effective_mac_ratio"] == cut["mac_ratio"]
    assert tkp["is_best"] and tkp["best_effective_macs"] == tkp["effective_macs"] and tkp["best_macs"] == cut["macs"]
    for name in ("best.pt", "last.pt"):
        saved = load_pruned(tmp_path / "run" / name)
        model, metadata = saved.model, saved.metadata
        assert metadata["phase"] == "tkp" and not any(hasattr(m, "parametrizations") for m in model.modules())
        convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
        for conv in convs.values():  # tiny_cnn: three 3x3 convs, all TKP convs
            assert (conv.weight != 0).flatten(2).sum(dim=2).eq(2).all()
        masks = masks_from_metadata(metadata)
        assert set(masks) == set(convs) and all(torch.equal(masks[n], convs[n].weight != 0) for n in convs)
        assert metadata["tkp"]["effective_macs"] == tkp["effective_macs"]
        assert tkp["effective_macs"] == measure(model, 3, 16).macs - _products_with_zero_weights(model, 3, 16)
        assert _val_accuracy(config, model) == tkp["accuracy"]


def test_tkp_alone_prunes_the_unpruned_model_and_builds_no_channel_pruner(tiny_job, tmp_path):
    # tiny_cnn has no expand groups: the default scope would refuse it, were a channel pruner built.
    config = tiny_job(*TKP, "pruning.schedule.kind=none", "stop.min_accuracy=0.0", "tkp.topk=1")
    result = run(config, directory=tmp_path / "run")
    (row,) = result.rows
    assert (row.step, row.phase, row.target_sparsity, row.sparsity) == (1, "tkp", 0.0, 0.0)
    assert row.macs == result.baseline_macs and row.effective_macs < 0.2 * row.macs
    assert row.epochs_run == 1 and row.is_best


def test_a_tkp_row_below_the_threshold_is_reported_but_never_the_best(tiny_job, tmp_path):
    rows = []
    run(tiny_job(*TKP, "pruning.schedule.kind=none", "stop.min_accuracy=1.0"), report=rows.append,
        directory=tmp_path / "run")
    assert [(r["phase"], r["feasible"], r["is_best"], r["best_step"]) for r in rows] == [("tkp", False, False, None)]
    assert not (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()


def test_no_tkp_row_follows_a_schedule_with_no_feasible_step(tiny_job, tmp_path):
    rows = []
    run(tiny_job(*TKP, "pruning.scope=all", "pruning.schedule.targets=[0.3]", "stop.min_accuracy=1.0"),
        report=rows.append, directory=tmp_path / "run")
    assert [r["phase"] for r in rows] == ["prune"]


def test_stage_one_adds_beta_times_the_penalty_to_the_distillation_loss_and_stage_two_does_not(tiny_job, tmp_path,
                                                                                             monkeypatch):
    calls, penalties = [], []
    real_loss, real_penalty = kernel_stage.make_loss, kernel_stage.tail_loss

    def loss(teacher, alpha, temperature, extra=None):
        calls.append((alpha, temperature, None if extra is None else float(extra().detach())))
        return real_loss(teacher, alpha, temperature, extra)

    def penalty(layers, regulariser, alpha):
        value = real_penalty(layers, regulariser, alpha)
        penalties.append((regulariser.parameters, float(value.detach())))
        return value

    monkeypatch.setattr(kernel_stage, "make_loss", loss)
    monkeypatch.setattr(kernel_stage, "tail_loss", penalty)
    run(tiny_job(*TKP, "pruning.schedule.kind=none", "stop.min_accuracy=0.0", "recovery.kd_alpha=0.7",
                 "tkp.reg_type=l2"), directory=tmp_path / "run")
    (stage1, stage2) = calls
    assert stage1[:2] == stage2[:2] == (0.7, 4.0)  # the recovery loss: distillation from the teacher
    assert penalties[0][0] == ("beta",) and penalties[0][1] > 0  # l2's
    assert stage1[2] == pytest.approx(10 * penalties[0][1]) and stage2[2] is None  # tkp.beta = 10


def _row(step: int, macs: int, effective: int, accuracy: float) -> StepRow:
    recovered = RecoveryResult(accuracy=accuracy, best_epoch=1, epochs_run=1, lr=1e-3)
    return StepRow.make(step, 0.3, 0.3, False, Complexity(macs, 10), Complexity(100, 20), accuracy, recovered, 0.5,
                        {}, effective_macs=effective)


def test_the_best_step_is_ranked_by_effective_macs():
    result = RunResult(directory=None, baseline_accuracy=0.9, threshold=0.5, baseline_macs=100, baseline_params=20)
    result.add(_row(1, 60, 60, 0.8))
    tkp = result.add(_row(2, 60, 20, 0.7))  # the same dense MACs, a third of the effective ones
    assert tkp.is_best and (tkp.best_step, tkp.best_effective_macs, tkp.best_macs) == (2, 20, 60)
    assert tkp.effective_mac_ratio == pytest.approx(0.2) and tkp.mac_ratio == pytest.approx(0.6)
    assert not math.isnan(result.rows[0].effective_mac_ratio)


def test_rows_parquet_holds_the_effective_columns(tiny_job, tmp_path):
    run(tiny_job(*TKP, "pruning.schedule.kind=none", "stop.min_accuracy=0.0"), directory=tmp_path / "run")
    frame = pd.read_parquet(tmp_path / "run" / "rows.parquet")
    assert {"effective_macs", "effective_mac_ratio", "best_effective_macs"} <= set(frame.columns)
    assert list(frame["phase"]) == ["tkp"]


def test_the_mac_objectives_read_the_best_steps_effective_macs():
    from prunetune.objectives import OBJECTIVES

    result = RunResult(directory=None, baseline_accuracy=0.9, threshold=0.5, baseline_macs=100, baseline_params=20)
    result.add(_row(1, 60, 60, 0.8))
    last = result.add(_row(2, 60, 20, 0.7)).to_dict()
    assert OBJECTIVES.get("accuracy_macs").values(last) == {"objective_accuracy": 0.7, "objective_macs": 20.0}
    assert OBJECTIVES.get("min_macs").values(last) == {"objective_macs": 20.0}


def test_stage_one_epochs_are_judged_by_the_accuracy_their_hard_masks_would_leave(tiny_job, tmp_path):
    # A negligible rate: stage 1 leaves the weights as they were, so its epoch scores what the masks
    # of the unpruned model give (the row's pre_accuracy), not the dense model's accuracy, and is no gain.
    epochs = []
    unregularised = [setting for setting in TKP if not setting.startswith("tkp.beta")]
    result = run(tiny_job(*unregularised, "pruning.schedule.kind=none", "stop.min_accuracy=0.0", "tkp.topk=1",
                          "tkp.reg_type=none", "tkp.stage1_lr=1e-12", "tkp.stage2_epochs=0", "tkp.stage2_lr=null"),
                 directory=tmp_path / "run", on_epoch=epochs.append)
    (row,) = result.rows
    (stage1,) = epochs
    assert stage1["val_accuracy"] == row.pre_accuracy == row.accuracy and not stage1["best"]
    assert row.pre_accuracy < result.baseline_accuracy  # what a dense judge would have seen instead
