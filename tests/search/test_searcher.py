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


def test_enqueued_settings_are_handed_out_first_and_a_dead_drivers_one_is_queued_once_again(tmp_path):
    from prunetune.study import ENQUEUED, enqueue, fail_stale_trials, requeue_interrupted

    objective, search = searcher(tmp_path, "accuracy_macs")
    enqueue(search.study, [{"recovery.lr": 1e-3}, {"recovery.lr": 2e-3}, {"recovery.lr": 3e-3}])
    assert search.suggest("a") == {"recovery.lr": 1e-3}
    assert search.suggest("b") == {"recovery.lr": 2e-3}
    search.on_trial_complete("a", result(objective, 0, 0.9, 500)[0])
    # The driver dies with "b" running: "b" is failed as stale, the waiting third setting stays queued.
    storage = study_storage(None, tmp_path)
    assert fail_stale_trials(search.study, storage) == 1
    assert [t.state for t in search.study.get_trials()] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    assert requeue_interrupted(search.study) == 1
    assert requeue_interrupted(search.study) == 0  # queued once, not once per resume
    search._live = {}
    assert [search.suggest(trial_id) for trial_id in "cd"] == [{"recovery.lr": 3e-3}, {"recovery.lr": 2e-3}]
    assert [t.user_attrs.get(ENQUEUED) for t in search.study.get_trials()] == [0, 1, 2, 1]


def test_a_warm_starts_trials_count_for_neither_the_requested_total_nor_the_summary(tmp_path):
    from prunetune.study import WARM_START

    objective, search = searcher(tmp_path, "accuracy_macs")
    distributions = {"recovery.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    search.study.add_trials([optuna.trial.create_trial(params={"recovery.lr": 1e-3}, distributions=distributions,
                                                       values=[0.99, 10], user_attrs={WARM_START: "other"})] * 4)
    assert search.finished_count() == 0
    assert search.suggest("a") is not None  # a study holding 4 finished trials of another search goes on
    search.on_trial_complete("a", result(objective, 0, 0.9, 500)[0])
    summary = summarise(search.study)
    assert (summary.complete, summary.warm_started) == (1, 4)
    assert [t.values for t in summary.best] == [[0.9, 500]]  # the other search's (better) trials are not its front
