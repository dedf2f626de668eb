import importlib

import pandas as pd
import pytest
import torch

from prunetune.baseline import prepare_baseline
from prunetune.models import measure
from prunetune.models.zoo import tiny_resnet
from prunetune.objectives import OBJECTIVES
from prunetune.pipeline import run
from prunetune.pipeline.losses import distillation_loss
from prunetune.pipeline.run import prepare_run
from prunetune.pruning import load_pruned
from prunetune.training import evaluate

PIPELINE = ("pruning.scope=all", "pruning.schedule.targets=[0.2,0.4]", "recovery.epochs=2", "recovery.patience=1",
            "baseline.lr=0.1", "baseline.epochs=3")


def test_run_reports_every_step_saves_models_and_rows(tiny_job, tmp_path):
    rows = []
    result = run(tiny_job(*PIPELINE, "stop.min_accuracy=0.0"), report=rows.append, directory=tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2] and all(r["feasible"] for r in rows)
    assert rows[0]["sparsity"] == pytest.approx(0.2, abs=0.02) and rows[1]["macs"] < rows[0]["macs"]
    assert rows[-1]["best_step"] == 2 and rows[-1]["best_macs"] == rows[-1]["macs"]
    for key in ("seconds_stats", "seconds_scoring", "seconds_pruning", "seconds_repair", "seconds_training",
                "seconds_evaluation", "pre_accuracy", "best_epoch", "epochs_run", "mac_ratio", "threshold"):
        assert key in rows[0]
    frame = pd.read_parquet(tmp_path / "run" / "rows.parquet")
    assert list(frame["step"]) == [1, 2] and frame["accuracy"].tolist() == [r["accuracy"] for r in rows]
    best, last = load_pruned(tmp_path / "run" / "best.pt"), load_pruned(tmp_path / "run" / "last.pt")
    assert best.metadata["step"] == 2 and last.metadata["macs"] == rows[-1]["macs"]
    assert result.rows[-1].accuracy == rows[-1]["accuracy"]


def test_the_stop_fires_below_the_threshold_and_the_row_is_still_reported(tiny_job, tmp_path):
    rows = []
    run(tiny_job(*PIPELINE, "stop.min_accuracy=1.0"), report=rows.append, directory=tmp_path / "run")
    assert len(rows) == 1 and not rows[0]["feasible"] and rows[0]["best_step"] is None
    assert not (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()


def test_two_runs_with_the_same_seed_give_identical_rows_on_cpu(tiny_job, tmp_path):
    job = tiny_job(*PIPELINE, "stop.min_accuracy=0.0", "pruning.criterion=vbp", "pruning.compensation=true",
                   "pruning.repair=asr", "recovery.variance_entropy_lambda=0.01")
    first, second = [], []
    run(job, report=first.append, directory=tmp_path / "a")
    run(job, report=second.append, directory=tmp_path / "b")

    def timeless(rows):
        return [{k: v for k, v in r.items() if not k.startswith("seconds")} for r in rows]

    assert timeless(first) == timeless(second)


def test_mask_then_prune_masks_intermediate_steps_and_cuts_at_the_last(tiny_job, tmp_path):
    rows = []
    run(tiny_job(*PIPELINE, "stop.min_accuracy=0.0", "pruning.mask_then_prune=true", "recovery.sparse_pretrain_epochs=1"),
        report=rows.append, directory=tmp_path / "run")
    assert [r["masked"] for r in rows] == [True, False]
    assert rows[0]["macs"] < rows[0]["macs"] / rows[0]["mac_ratio"]  # masked MACs count live channels only
    assert load_pruned(tmp_path / "run" / "last.pt").metadata["macs"] == rows[-1]["macs"]


def test_a_latency_search_run_measures_every_step(tiny_job, tmp_path):
    config = tiny_job("pruning.scope=all", "pruning.schedule.targets=[0.2,0.4]", "recovery.epochs=1",
                      "stop.min_accuracy=0.0", "search.objectives=accuracy_latency", "latency.repeats=3")
    result = run(config, directory=tmp_path / "run", objective=OBJECTIVES.get(config.search.objectives))
    assert len(result.rows) == 2 and all(row.latency_ms > 0 for row in result.rows)
    assert result.rows[-1].best_latency_ms == min(row.latency_ms for row in result.rows)
    # the dense model is timed once, in the same run: the base of every step's latency ratio (cost rungs)
    (dense,) = {row.baseline_latency_ms for row in result.rows}
    assert dense > 0


FINAL = ("pruning.scope=all", "recovery.epochs=0", "recovery.patience=1", "recovery.final_epochs=2",
         "recovery.final_lr=1e-3", "baseline.lr=0.1", "baseline.epochs=3")


def _val_accuracy(config, model) -> float:
    baseline = prepare_baseline(config)  # reused: the run's own val split
    return evaluate(baseline.runtime.prepare(model), baseline.loaders.val, baseline.runtime).accuracy


def test_the_final_fine_tuning_is_one_more_row_whose_model_is_the_saved_best(tiny_job, tmp_path):
    config = tiny_job(*FINAL, "pruning.schedule.targets=[0.2,0.4]", "stop.min_accuracy=0.0")
    rows = []
    run(config, report=rows.append, directory=tmp_path / "run")
    assert [(r["step"], r["phase"]) for r in rows] == [(1, "prune"), (2, "prune"), (3, "final")]
    final, cut = rows[-1], rows[1]
    assert (final["target_sparsity"], final["macs"], final["masked"]) == (cut["target_sparsity"], cut["macs"], False)
    assert final["epochs_run"] >= 1 and final["accuracy"] > cut["accuracy"]  # fine-tuned, so the new best
    assert (final["lr"], cut["lr"]) == (1e-3, 1e-4)  # recovery.final_lr, recovery.lr
    assert final["is_best"] and final["best_step"] == 3
    best, last = load_pruned(tmp_path / "run" / "best.pt"), load_pruned(tmp_path / "run" / "last.pt")
    assert best.metadata["step"] == 3 and best.metadata["phase"] == "final"
    assert _val_accuracy(config, best.model) == final["accuracy"] == _val_accuracy(config, last.model)
    assert list(pd.read_parquet(tmp_path / "run" / "rows.parquet")["phase"]) == ["prune", "prune", "final"]


def test_after_an_infeasible_cut_the_final_fine_tuning_starts_from_the_last_feasible_model(tiny_job, tmp_path):
    # Baseline ~0.23: 20% of the channels keep it above 0.15, 90% do not.
    rows = []
    run(tiny_job(*FINAL, "pruning.schedule.targets=[0.2,0.9]", "stop.min_accuracy=0.15"), report=rows.append,
        directory=tmp_path / "run")
    assert [(r["phase"], r["feasible"]) for r in rows] == [("prune", True), ("prune", False), ("final", True)]
    assert (rows[2]["target_sparsity"], rows[2]["macs"]) == (rows[0]["target_sparsity"], rows[0]["macs"])
    assert rows[2]["pre_accuracy"] == rows[0]["accuracy"]  # BN recalibrated anew on the same model
    assert rows[2]["accuracy"] > rows[0]["accuracy"] and rows[2]["best_step"] == 3
    for kept in ("best.pt", "last.pt"):  # the fine-tuned copy of step 1's model, not the student of step 2
        saved = load_pruned(tmp_path / "run" / kept)
        assert saved.metadata["step"] == 3 and measure(saved.model, 3, 16).macs == rows[0]["macs"]


def test_no_final_fine_tuning_follows_when_no_step_was_feasible(tiny_job, tmp_path):
    rows = []
    run(tiny_job(*FINAL, "pruning.schedule.targets=[0.2,0.4]", "stop.min_accuracy=1.0"), report=rows.append,
        directory=tmp_path / "run")
    assert [r["phase"] for r in rows] == ["prune"] and not rows[0]["feasible"]


@pytest.mark.parametrize("criterion", ["taylor", "vbp"])
def test_a_mac_target_run_reaches_the_target_with_a_criterion_that_needs_calibration(tiny_job, tmp_path, criterion):
    rows = []
    run(tiny_job("pruning.scope=all", f"pruning.criterion={criterion}", "pruning.schedule.kind=mac_target",
                 "pruning.schedule.mac_target=0.6", "pruning.schedule.steps=1", "recovery.epochs=1",
                 "stop.min_accuracy=0.0"), report=rows.append, directory=tmp_path / "run")
    assert rows[0]["mac_ratio"] == pytest.approx(0.6, rel=0.02)


def test_recovery_distils_from_a_separate_teacher_checkpoint_not_from_the_baseline(tiny_job, tmp_path):
    # The user's path: a bigger model trained elsewhere (here a tiny_resnet), saved as a state_dict.
    teacher = prepare_baseline(tiny_job("model.name=tiny_resnet", "baseline.lr=0.1")).model
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    config = tiny_job("pruning.scope=all", "recovery.kd_alpha=0.7",
                      f"recovery.teacher={{name: tiny_resnet, checkpoint: {tmp_path / 'teacher.pt'}}}")
    (tmp_path / "run").mkdir()
    prepared = prepare_run(config, tmp_path / "run", OBJECTIVES.get("accuracy_macs"))
    loaded = tiny_resnet(num_classes=10)
    loaded.load_state_dict(torch.load(tmp_path / "teacher.pt"))
    images, labels = next(iter(prepared.baseline.loaders.train))
    logits = prepared.student(images)
    with torch.no_grad():
        expected = distillation_loss(logits, loaded.eval()(images), labels, 0.7, 4.0).item()
        from_baseline = distillation_loss(logits, prepared.baseline.model(images), labels, 0.7, 4.0).item()
    assert prepared.loss(logits, images, labels).item() == pytest.approx(expected)
    assert from_baseline != pytest.approx(expected)


def test_models_the_run_copies_or_saves_carry_no_variance_entropy_hooks(tiny_job, tmp_path, monkeypatch):
    # A copy that kept them would record an entropy (and its graph) per batch into a list nobody pops.
    from prunetune.pipeline.losses import _EntropyHook

    def hooked(model):
        return [m for m in model.modules() if any(isinstance(h, _EntropyHook) for h in m._forward_hooks.values())]

    pipeline, rows, final = importlib.import_module("prunetune.pipeline.run"), [], {}
    original = pipeline.final_step
    monkeypatch.setattr(pipeline, "final_step", lambda *args: final.setdefault("row", original(*args)))
    run(tiny_job(*FINAL, "pruning.schedule.targets=[0.2,0.9]", "stop.min_accuracy=0.15",
                 "recovery.variance_entropy_lambda=0.01"), report=rows.append, directory=tmp_path / "run")
    assert [r["phase"] for r in rows] == ["prune", "prune", "final"]
    assert hooked(final["row"][1]) == []  # the fine-tuned copy of step 1's model
    for kept in ("best.pt", "last.pt"):
        assert hooked(load_pruned(tmp_path / "run" / kept).model) == []
