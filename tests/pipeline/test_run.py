import pandas as pd
import pytest

from prunetune.objectives import OBJECTIVES
from prunetune.pipeline import run
from prunetune.pruning import load_pruned

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
