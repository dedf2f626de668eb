"""What the searcher tells Optuna (prunetune/search/searcher.py), driven by hand: no Ray trials run."""

import optuna
import pytest
from optuna.trial import TrialState

from prunetune.objectives import OBJECTIVES
from prunetune.samplers import make_sampler
from prunetune.search.searcher import StudySearch
from prunetune.study import STOPPED_BY, open_study, study_storage, summarise


def one_setting(trial: optuna.Trial) -> None:
    trial.suggest_float("recovery.lr", 1e-4, 1e-2, log=True)


def searcher(tmp_path, objective_name, stopped=()):
    objective = OBJECTIVES.get(objective_name)
    storage = study_storage(None, tmp_path, create=True)
    sampler = make_sampler("tpe", 0, objective.multi)
    open_study(storage, "s", objective, sampler, create=True)
    reasons = {trial_id: {"scheduler": "rungs", "rung": 1, "level": 0.8} for trial_id in stopped}
    search = StudySearch(space=one_setting, metric=list(objective.metrics), mode=list(objective.modes),
                         sampler=sampler, study_name="s", storage=storage, total=4, max_concurrent=4,
                         stop_reason=reasons.get)
    return objective, search


def result(objective, step, accuracy, macs, earlier=()):
    """A trainable's report of a step (best feasible step carried as the pipeline's rows carry it), and its row."""
    row = {"step": step, "accuracy": accuracy, "macs": macs, "mac_ratio": macs / 1000, "feasible": accuracy >= 0.5,
           "threshold": 0.5, "best_accuracy": float("nan"), "best_macs": None}
    for seen in [*earlier, row]:
        if seen["feasible"]:
            row.update(best_accuracy=seen["accuracy"], best_macs=seen["macs"])
    return {**row, **objective.values(row, earlier)}, row


@pytest.mark.parametrize("objective_name", ["accuracy_macs", "front_area"])
def test_a_trial_a_rung_stopped_is_pruned_with_its_reason_and_never_on_the_studys_front(tmp_path, objective_name):
    objective, search = searcher(tmp_path, objective_name, stopped={"stopped"})
    for trial_id in ("whole", "stopped"):
        assert search.suggest(trial_id) is not None
    search.on_trial_complete("whole", result(objective, 1, 0.80, 600)[0])
    # Ray hands a stopped trial over with its last result; its best so far is better than "whole"'s
    search.on_trial_complete("stopped", result(objective, 1, 0.95, 500)[0])
    study = search.study
    whole, stopped = study.get_trials()
    assert whole.state == TrialState.COMPLETE and STOPPED_BY not in whole.user_attrs
    assert stopped.state == TrialState.PRUNED
    # Optuna keeps a pruned trial's last intermediate value as its value (single objective only)
    assert stopped.values == (None if objective.multi else [stopped.intermediate_values[1]])
    assert stopped.user_attrs[STOPPED_BY] == {"scheduler": "rungs", "rung": 1, "level": 0.8}
    assert [t.number for t in study.best_trials] == [whole.number]
    summary = summarise(study)
    assert (summary.complete, summary.no_feasible_step, summary.stopped, summary.finished) == (1, 0, 1, 2)


def test_a_single_objective_study_keeps_every_steps_value_as_an_intermediate_value(tmp_path):
    objective, search = searcher(tmp_path, "front_area", stopped={"b"})
    search.suggest("a")
    search.suggest("b")
    rows, reported = [], []
    for step, (accuracy, macs) in enumerate([(0.9, 800), (0.7, 500), (0.4, 300)], start=1):
        metrics, row = result(objective, step, accuracy, macs, rows)
        rows.append(row)
        reported.append(metrics)
        if step < 3:
            search.on_trial_result("a", metrics)
    search.on_trial_complete("a", reported[-1])
    search.on_trial_result("b", reported[0])
    search.on_trial_complete("b", reported[1])  # stopped on step 2: Ray gives that result to on_trial_complete only
    a, b = search.study.get_trials()
    # (0.9, 0.8) and (0.7, 0.5) against (0.5, 1.0): 0.4 x 0.2 + 0.2 x 0.3; the infeasible step adds nothing
    assert a.intermediate_values == {1: pytest.approx(0.08), 2: pytest.approx(0.14), 3: pytest.approx(0.14)}
    assert a.value == pytest.approx(0.14)
    assert b.state == TrialState.PRUNED and b.intermediate_values == {1: pytest.approx(0.08), 2: pytest.approx(0.14)}


def test_a_multi_objective_study_gets_no_intermediate_values(tmp_path):
    objective, search = searcher(tmp_path, "accuracy_macs")
    search.suggest("a")
    search.on_trial_result("a", result(objective, 1, 0.9, 800)[0])  # Optuna would raise for report()
    search.on_trial_complete("a", result(objective, 2, 0.8, 500)[0])
    (a,) = search.study.get_trials()
    assert a.state == TrialState.COMPLETE and a.intermediate_values == {} and a.values == [0.8, 500]
