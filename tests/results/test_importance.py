"""The report's setting importance: the method named, shown only from enough trials, never for a constant setting."""

import html
import math

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.home import STORE_NAME
from prunetune.registry import OBJECTIVES
from prunetune.results.importance import (
    MIN_TRIALS,
    setting_importance,
    trial_front_volumes,
)
from prunetune.results.report import importance_plot, write_report
from prunetune.results.store import Store, make_row
from prunetune.step_row import ROW_COLUMNS
from prunetune.study import STUDY_FILE
from tests.results.homes import write_search_json

ACCURACY_MACS = OBJECTIVES.get("accuracy_macs")
DISTRIBUTIONS = {"pruning.criterion": CategoricalDistribution(["l1", "bn_gamma", "vbp"]),
                 "recovery.kd_alpha": FloatDistribution(0.0, 0.9),
                 "recovery.lr": FloatDistribution(5e-4, 3e-3, log=True)}
THRESHOLD = 0.97


def _steps(number: int, lr: float) -> list[dict]:
    """Three steps to 20/40/60% of the MACs removed; a high lr loses accuracy twice as fast (kd_alpha: nothing)."""
    rows = []
    for step in (1, 2, 3):
        accuracy = 0.99 - step * (0.008 if lr > 1.5e-3 else 0.004)
        rows.append({"trial": number, "step": step, "accuracy": accuracy, "mac_ratio": 1 - 0.2 * step,
                     "macs": int(1e6 * (1 - 0.2 * step)), "threshold": THRESHOLD, "feasible": accuracy >= THRESHOLD,
                     "sparsity": 0.1 * step, "baseline_accuracy": 0.99, "baseline_macs": int(1e6)})
    return rows


def searched(trials: int, criteria=("l1",), seed: int = 0) -> tuple[optuna.Study, pd.DataFrame]:
    """A finished study of ``trials`` trials and their steps; the criterion takes only the values in ``criteria``."""
    rng = np.random.default_rng(seed)
    study = optuna.create_study(directions=["maximize", "minimize"], storage=optuna.storages.InMemoryStorage())
    rows = []
    for number in range(trials):
        params = {"pruning.criterion": criteria[number % len(criteria)], "recovery.kd_alpha": float(rng.uniform(0, 0.9)),
                  "recovery.lr": float(np.exp(rng.uniform(math.log(5e-4), math.log(3e-3))))}
        steps = _steps(number, params["recovery.lr"])
        best = [row for row in steps if row["feasible"]][-1]
        study.add_trial(optuna.trial.create_trial(params=params, distributions=DISTRIBUTIONS,
                                                  values=[best["accuracy"], best["macs"]]))
        rows += steps
    return study, pd.DataFrame(rows)


def test_a_trial_is_ranked_by_the_hypervolume_its_feasible_steps_dominate():
    rows = pd.DataFrame([
        {"trial": 0, "step": 1, "accuracy": 0.98, "mac_ratio": 0.8, "threshold": 0.97, "feasible": True},
        {"trial": 0, "step": 2, "accuracy": 0.975, "mac_ratio": 0.6, "threshold": 0.97, "feasible": True},
        {"trial": 0, "step": 3, "accuracy": 0.96, "mac_ratio": 0.4, "threshold": 0.97, "feasible": False},
        {"trial": 1, "step": 1, "accuracy": 0.95, "mac_ratio": 0.8, "threshold": 0.97, "feasible": False}])
    volumes = trial_front_volumes(rows, ACCURACY_MACS)
    # Both steps count, not only the most pruned one the trial's objective values hold.
    assert volumes[0] == pytest.approx(0.01 * 0.2 + 0.005 * 0.2)
    assert volumes[1] == 0.0  # no feasible step: the worst a trial can do
    # front_area is itself that area: its trials rank on accuracy and MAC ratio too (the
    # objective has no row column of its own).
    assert trial_front_volumes(rows, OBJECTIVES.get("front_area")) == volumes


def test_latency_is_measured_below_the_slowest_step_of_all_the_trials():
    rows = pd.DataFrame([
        {"trial": 0, "step": 1, "accuracy": 0.98, "latency_ms": 2.0, "threshold": 0.97, "feasible": True},
        {"trial": 1, "step": 1, "accuracy": 0.98, "latency_ms": 4.0, "threshold": 0.97, "feasible": True}])
    volumes = trial_front_volumes(rows, OBJECTIVES.get("accuracy_latency"))
    assert volumes == {0: pytest.approx(0.01 * 2.0), 1: 0.0}  # the same reference (4 ms) for both trials


def test_below_the_trial_threshold_nothing_is_shown_and_the_reason_says_why(tmp_path):
    study, rows = searched(3)
    found = setting_importance(study, rows, ACCURACY_MACS)
    assert not found.shown and found.shares == {}
    assert found.reason == f"3 finished trials; PED-ANOVA needs at least {MIN_TRIALS} (5 in the best quarter), so " \
                           "no importance is shown"
    report = write_report(rows, tmp_path, "s", study)
    assert not (tmp_path / "importance.png").exists()
    assert found.reason in (tmp_path / "index.html").read_text()
    assert report.notes == [f"setting importance not shown: {found.reason}"]


def test_a_setting_that_never_varied_never_gets_a_share():
    study, rows = searched(MIN_TRIALS + 4)
    found = setting_importance(study, rows, ACCURACY_MACS)
    assert set(found.shares) == {"recovery.kd_alpha", "recovery.lr"}
    assert found.constant == {"pruning.criterion": "l1"}
    assert sum(found.shares.values()) == pytest.approx(1.0)


def test_the_setting_that_shapes_the_front_gets_the_largest_share():
    study, rows = searched(MIN_TRIALS + 4, criteria=("l1", "bn_gamma", "vbp"))
    found = setting_importance(study, rows, ACCURACY_MACS)
    assert set(found.shares) == {"pruning.criterion", "recovery.kd_alpha", "recovery.lr"}
    assert max(found.shares, key=found.shares.get) == "recovery.lr"
    assert found.shares["recovery.lr"] > 0.5


def test_the_plot_names_the_method_and_what_the_trials_are_ranked_by():
    study, rows = searched(MIN_TRIALS)
    axis = importance_plot(setting_importance(study, rows, ACCURACY_MACS), "s").axes[0]
    assert "PED-ANOVA" in axis.get_xlabel() and "PED-ANOVA" in axis.get_title()
    assert "fANOVA" not in axis.get_xlabel() + axis.get_title()
    assert "hypervolume of the trial's feasible steps" in axis.get_title().replace("\n", " ")
    assert "not varied, so not shown: pruning.criterion = l1" in axis.get_xlabel()
    assert [label.get_text() for label in axis.get_yticklabels()] == ["recovery.kd_alpha", "recovery.lr"]


def _home(root, trials: int):
    """A search home as the driver leaves it: search.json, a study of ``trials`` finished trials, their steps."""
    job, folder = write_search_json(root, baseline=str(root / "none"))
    study, rows = searched(trials)
    saved = optuna.create_study(storage=f"sqlite:///{folder / STUDY_FILE}", study_name="s",
                                directions=["maximize", "minimize"])
    saved.add_trials(study.get_trials())
    store = Store(folder / STORE_NAME, write_share=1.0)
    blank = {column: 0.5 for column in ROW_COLUMNS} | {"is_best": False}
    for row, trial in ((row, study.trials[row["trial"]]) for row in rows.to_dict("records")):
        store.put(make_row("s", row["trial"], f"t{row['trial']}", blank | row, trial.params, job, None))
    store.flush()


def _report(root, output):
    result = CliRunner().invoke(app, ["report", "s", "--storage", str(root), "-o", str(output)])
    assert result.exit_code == 0, result.output
    return result.output, html.unescape((output / "index.html").read_text())


def test_report_on_a_small_search_shows_no_importance_and_says_why(tmp_path):
    _home(tmp_path, 3)
    output, page = _report(tmp_path, tmp_path / "report")
    reason = f"3 finished trials; PED-ANOVA needs at least {MIN_TRIALS} (5 in the best quarter)"
    assert f"note: setting importance not shown: {reason}" in output
    assert reason in page and "importance.png" not in page
    assert not (tmp_path / "report" / "importance.png").exists()
    assert (tmp_path / "report" / "accuracy_vs_macs.png").exists()


def test_report_on_enough_trials_shows_importance_named_by_its_method(tmp_path):
    _home(tmp_path, MIN_TRIALS)
    output, page = _report(tmp_path, tmp_path / "report")
    assert (tmp_path / "report" / "importance.png").exists() and "<img src='importance.png'" in page
    assert f"wrote {tmp_path / 'report' / 'importance.png'}" in output
    assert "PED-ANOVA (Optuna's default importance evaluator, chosen explicitly)" in page
    assert f"best quarter of the {MIN_TRIALS} finished trials" in page
    assert "left out (pruning.criterion = l1)" in page and "fANOVA" not in page
