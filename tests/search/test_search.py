"""End-to-end searches in the test session's Ray (tiny models, a few trials each)."""

from pathlib import Path

import pytest
from optuna.trial import TrialState

from prunetune.baseline import prepare_baseline
from prunetune.errors import UserError
from prunetune.home import CHECKPOINT_MODEL
from prunetune.pruning.persist import load_pruned
from prunetune.results import load
from prunetune.search import run_search, search_status
from prunetune.objectives import OBJECTIVES
from prunetune.spaces import Choice, Parameter, SearchSpace, load_search
from prunetune.study import open_study, study_storage
from prunetune.training import evaluate
from tests.ray_records import ray_results


def _study(outcome, job):
    return open_study(study_storage(job.storage.study_url, outcome.home), outcome.name, OBJECTIVES.get(job.search.objectives))


def test_multi_objective_search_keeps_infeasible_trials_off_the_front(ray_session, search_job):
    job, space = load_search(search_job("mo", trials=4, min_accuracy="{choice: [0.0, 1.0]}"), [])
    said = []
    outcome = run_search(job, space, verbose=0, on_baseline=said.append)
    assert [(s["state"], s["threshold"]) for s in said] == [("trained", None)]  # stop.* searched: per trial
    study = _study(outcome, job)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["accuracy", "macs"]
    trials = study.get_trials()
    assert outcome.summary.finished == 4 and len([t for t in trials if t.state != TrialState.FAIL]) == 4
    impossible = [t for t in trials if t.params["stop.min_accuracy"] == 1.0]
    assert impossible and all(t.state == TrialState.PRUNED for t in impossible)  # no feasible step, no values
    assert study.best_trials
    for best in study.best_trials:
        assert best.params["stop.min_accuracy"] == 0.0
        rows = ray_results(outcome.home, best.user_attrs["ray_trial_id"])
        feasible = rows[rows["feasible"]]
        assert ((feasible["accuracy"] == best.values[0]) & (feasible["macs"] == best.values[1])).any()
    assert search_status(outcome.name, job.storage.root).summary.finished == 4


def test_trials_that_raise_are_recorded_and_the_search_goes_on(ray_session, search_job):
    # tiny_cnn has no expand blocks: a trial drawing scope "expand" raises (a bad combination).
    job, space = load_search(search_job("fail", trials=3), ["pruning.scope={choice: [all, expand]}"])
    said = []
    outcome = run_search(job, space, verbose=0, on_baseline=said.append)
    assert [(s["state"], s["threshold"]) for s in said] == [("trained", 0.0)]  # stop.min_accuracy 0.0
    study = _study(outcome, job)
    failed = [t for t in study.get_trials() if t.state == TrialState.FAIL]
    assert outcome.summary.finished == 3
    assert failed and all(t.params["pruning.scope"] == "expand" for t in failed)
    assert all("no prunable channels in scope 'expand'" in outcome.summary.errors[t.number] for t in failed)


def test_a_second_search_with_the_same_name_is_refused(ray_session, search_job):
    job, space = load_search(search_job("dup", trials=1), [])
    run_search(job, space, verbose=0)
    with pytest.raises(UserError, match="already exists.*prunetune resume dup"):
        run_search(job, space, verbose=0)


def test_searching_a_baseline_setting_is_refused_before_ray_starts(search_job):
    with pytest.raises(UserError, match="baseline.epochs cannot be searched"):
        job, space = load_search(search_job("shared"), ["baseline.epochs={choice: [1, 2]}"])
        run_search(job, space, verbose=0)


def test_a_space_built_by_hand_is_refused_by_the_driver_too(search_job):
    job, _ = load_search(search_job("by-hand"), [])
    space = SearchSpace((Parameter("runtime.threads", Choice((1, 2))),))
    with pytest.raises(UserError, match="runtime.threads cannot be searched"):
        run_search(job, space, verbose=0)


def test_trials_in_a_reused_worker_keep_their_own_steps_and_models(ray_session, search_job):
    """reuse_actors (the default): later trials run in a finished trial's worker process."""
    job, space = load_search(search_job("reuse", trials=3), ["search.max_concurrent_trials=1"])
    assert job.search.reuse_actors
    outcome = run_search(job, space, verbose=0)
    rows = load("reuse", job.storage.root)
    assert rows["trial"].nunique() == 3
    workers = {int(ray_results(outcome.home, trial_id)["pid"].iloc[0]) for trial_id in rows["trial_id"].unique()}
    assert len(workers) < 3, "no worker was reused"
    baseline = prepare_baseline(job)
    feasible = rows[rows["feasible"]]
    assert len(feasible) == len(rows)  # min_accuracy 0: every step keeps its model
    for _, row in feasible.iterrows():
        model = load_pruned(Path(row["checkpoint"]) / CHECKPOINT_MODEL).model
        assert sum(p.numel() for p in model.parameters()) == row["params"]
        assert evaluate(model, baseline.loaders.val, baseline.runtime).accuracy == pytest.approx(row["accuracy"])


def test_a_trial_whose_last_cut_falls_below_the_threshold_still_reports_its_final_fine_tuning(ray_session, search_job):
    # Baseline ~0.65: 10% of the channels keep it above 0.4, 90% do not; the final row fine-tunes the 10% model.
    job, space = load_search(search_job("final", trials=1, min_accuracy="0.4"), [
        "pruning.criterion=l1", "data.train_size=600", "baseline.epochs=6", "pruning.schedule.targets=[0.1,0.9]",
        "recovery.epochs=0", "recovery.final_epochs=1"])
    run_search(job, space, verbose=0)
    rows = load("final", job.storage.root).sort_values("step")
    assert list(zip(rows["phase"], rows["feasible"])) == [("prune", True), ("prune", False), ("final", True)]
    final = rows.iloc[-1]
    assert final["macs"] == rows.iloc[0]["macs"] and final["checkpoint"]
    model = load_pruned(Path(final["checkpoint"]) / CHECKPOINT_MODEL).model
    assert sum(p.numel() for p in model.parameters()) == final["params"]


@pytest.mark.timeout(120)  # Ray used to wait forever for a node that can hold the trial
@pytest.mark.parametrize("override, message", [
    ("search.cpus_per_trial=64", r"search.cpus_per_trial: 64 CPU per trial, .*its largest node has 2\)"),
    ("search.gpus_per_trial=1", r"search.gpus_per_trial: 1 GPU per trial, .*it has none\)"),
])
def test_a_trial_no_node_can_hold_is_refused_before_the_search_starts(ray_session, search_job, override, message):
    job, space = load_search(search_job("too-big", trials=1), [override])
    with pytest.raises(UserError, match=message):
        run_search(job, space, verbose=0)
    assert not (Path(job.storage.root) / "too-big").exists()  # nothing left: the same name can run once fixed


def test_a_failed_trial_prints_one_line_and_where_its_traceback_is(ray_session, search_job, capfd, caplog):
    job, space = load_search(search_job("one-line", trials=1), ["pruning.scope={choice: [expand]}",
                                                                 "search.max_retries=0"])
    run_search(job, space, num_samples=1, verbose=1)
    printed = capfd.readouterr()
    output = printed.out + printed.err + caplog.text  # Ray logs through its loggers, prints to the terminal
    lines = [line for line in output.splitlines() if line.startswith("trial 0 failed: ")]
    assert len(lines) == 1 and "no prunable channels in scope 'expand'" in lines[0]
    error_file = Path(lines[0].rsplit("(traceback: ", 1)[1].rstrip(")"))
    assert error_file.is_file() and 'File "' in error_file.read_text() and "expand" in error_file.read_text()
    assert 'File "' not in output and "Trial task failed" not in output
