"""Searches with cost rungs: a real tiny search in the session's Ray, and a driver killed and resumed.

The space mixes a fine schedule (F: 20% then 40% of the channels) with a coarse one (C: 60%
then 70%), and a threshold of 0 (every step feasible) with one of 1 (x: no step is). From the
dense model's accuracy to its first step, C loses far more accuracy per unit of cost than F,
so at the rungs its first step passes (0.9 ... 0.3 of the MACs) it is behind F.
"""

import json
import os
import signal
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.curves import front_area
from prunetune.results import load, pareto_front
from prunetune.results.experiment import open_search, open_search_study
from prunetune.rungs import CONTINUE, ENDED, GRACE, RUNGS_FILE, STOP, Rung, RungSettings, decide, read_records
from prunetune.search import run_search
from prunetune.spaces import load_search
from prunetune.study import STOPPED_BY
from tests.search.test_resume import PRUNETUNE, _finished, _wait_for_complete

SCHEDULES = "pruning.schedule.targets={choice: [[0.2, 0.4], [0.6, 0.7]]}"
RUNGS = ["pruning.criterion=l1", SCHEDULES, "search.scheduler=rungs", "search.rungs.grace=2"]


def _replayed(records, settings: RungSettings) -> list[tuple[int, int, str]]:
    """(records at the rung, better ones, decision) of each record, made again from the records before it."""
    rungs = [Rung() for _ in settings.levels]
    made = []
    for record in records:
        made.append(decide(record.feasible, record.accuracy, record.decision != ENDED, rungs[record.rung], settings))
        rungs[record.rung].add(record)
    return made


def _made(records) -> list[tuple[int, int, str]]:
    return [(record.recorded, record.better, record.decision) for record in records]


def test_a_search_with_rungs_stops_a_trial_behind_at_a_rung_and_keeps_its_steps(ray_session, search_job):
    # sampler seed 4 draws F, F, C, Cx: the second F ties the first, C is behind both, Cx has no feasible step
    config = search_job("rungs", trials=4, min_accuracy="{choice: [0.0, 1.0]}")
    job, space = load_search(config, [*RUNGS, "search.max_concurrent_trials=1", "search.sampler_seed=4"])
    outcome = run_search(job, space, verbose=0)
    study = open_search_study(open_search("rungs", job.storage.root))
    trials = study.get_trials()
    rows = load("rungs", job.storage.root)
    records = read_records(outcome.home / RUNGS_FILE)
    assert outcome.summary.finished == 4 == len(trials) and outcome.summary.failed == 0

    stopped = [t for t in trials if STOPPED_BY in t.user_attrs]
    assert [t.params["stop.min_accuracy"] for t in stopped] == [0.0] and outcome.summary.stopped == 1
    (stop,) = stopped
    assert stop.state == TrialState.PRUNED and stop.values is None
    first_stop = next(r for r in records if r.decision == STOP)
    assert stop.user_attrs[STOPPED_BY]["level"] == first_stop.level and first_stop.trial == stop.number
    # Stopped after its first step: that step is a row with its model; the second never ran.
    own = rows[rows["trial"] == stop.number]
    assert own["step"].tolist() == [1] and (own["checkpoint"] != "").all()
    assert (Path(own["checkpoint"].iloc[0]) / "model.pt").is_file()

    # The others ran to their end: COMPLETE with a feasible step, PRUNED (no stopped_by) without.
    for trial in trials:
        if trial is not stop:
            feasible = rows[(rows["trial"] == trial.number) & rows["feasible"]]
            assert trial.state == (TrialState.COMPLETE if len(feasible) else TrialState.PRUNED)
            assert len(rows[rows["trial"] == trial.number]) == (2 if len(feasible) else 1)
    assert any(t.state == TrialState.PRUNED and STOPPED_BY not in t.user_attrs for t in trials)
    assert _made(records) == _replayed(records, RungSettings(job.search.rungs.levels, 3.0, 2))
    assert {GRACE, CONTINUE, STOP, ENDED} <= {r.decision for r in records}

    # Nothing infeasible on any front; the stopped trial's cheapest step is on the step front (no one else
    # pruned that far) and on `prunetune pareto`.
    front = pareto_front(rows)
    assert front["feasible"].all() and stop.number in front["trial"].tolist()
    assert all(rows[(rows["trial"] == best.number) & (rows["accuracy"] == best.values[0])
                    & (rows["macs"] == best.values[1])]["feasible"].all() for best in study.best_trials)
    assert stop.number not in [t.number for t in study.best_trials]
    shown = CliRunner().invoke(app, ["pareto", "rungs", "--storage", job.storage.root, "--format", "json"])
    assert shown.exit_code == 0, shown.output
    assert [(r["trial"], r["step"]) for r in json.loads(shown.output)] == list(zip(front["trial"], front["step"]))

    status = CliRunner().invoke(app, ["status", "rungs", "--storage", job.storage.root])
    assert status.exit_code == 0, status.output
    assert "rungs: 4/4 finished (2 with a feasible step, 1 without, 1 stopped at a rung)" in status.output
    assert "Cost rungs (MAC ratios, reduction factor 3, grace 2): 1 trial stopped" in status.output


def test_a_search_with_rungs_killed_and_resumed_keeps_its_rung_records_and_decisions(search_job, tmp_path):
    config = search_job("killrungs", trials=4, min_accuracy="{choice: [0.0, 1.0]}")
    root = tmp_path / "runs"
    home = root / "killrungs"
    overrides = [*RUNGS, "search.sampler_seed=6"]  # F, C, Cx, Cx, F: C is behind F where both are recorded
    search = subprocess.Popen([*PRUNETUNE, "search", str(config), *overrides], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_complete(home / "study.db", search, 1)
        os.killpg(search.pid, signal.SIGKILL)
        search.communicate()
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
    before = read_records(home / RUNGS_FILE)
    assert before
    resumed = subprocess.run([*PRUNETUNE, "resume", "killrungs", "--storage", str(root)], capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "4/4 finished" in resumed.stdout
    after = read_records(home / RUNGS_FILE)
    assert after[:len(before)] == before and len(after) > len(before)
    assert len({(r.trial_id, r.rung) for r in after}) == len(after)  # no trial recorded twice at a rung
    # The resumed driver decided with the records made before the kill: each record counts all those before
    # it at its rung, and its decision is the rule's on them (a driver that started its rungs empty would
    # count fewer, and say "grace" where the rung had filled).
    job, _ = load_search(config, overrides)
    assert _made(after) == _replayed(after, RungSettings(job.search.rungs.levels, 3.0, 2))
    finished = [(n, state, ray_id) for n, state, ray_id in _finished(home / "study.db") if state != "FAIL"]
    assert len(finished) == 4 and len({ray_id for *_, ray_id in finished}) == 4
    study = optuna.load_study(study_name="killrungs", storage=f"sqlite:///{home / 'study.db'}")
    stopped_in_study = {t.user_attrs["ray_trial_id"] for t in study.get_trials() if STOPPED_BY in t.user_attrs}
    stopped_records = {r.trial_id for r in after if r.decision == STOP}
    assert stopped_in_study <= stopped_records
    assert all(t.state == TrialState.FAIL for t in study.get_trials()
               if t.user_attrs.get("ray_trial_id") in stopped_records - stopped_in_study)  # stopped as it was killed


def test_a_front_area_search_keeps_the_area_so_far_of_every_step_as_the_trials_intermediate_value(ray_session,
                                                                                                  search_job):
    config = search_job("area", trials=2, min_accuracy="0.0")
    job, space = load_search(config, ["search.objectives=front_area", "pruning.criterion={choice: [l1, bn_gamma]}"])
    run_search(job, space, verbose=0)
    study = open_search_study(open_search("area", job.storage.root))
    rows = load("area", job.storage.root)
    assert [d.name for d in study.directions] == ["MAXIMIZE"] and study.metric_names == ["front_area"]
    for trial in study.get_trials():
        own = rows[rows["trial"] == trial.number].sort_values("step")
        assert trial.state == TrialState.COMPLETE and list(trial.intermediate_values) == own["step"].tolist() == [1, 2]
        by_hand = [front_area(own.iloc[:count].to_dict("records"), "macs") for count in (1, 2)]
        assert list(trial.intermediate_values.values()) == pytest.approx(by_hand)
        assert trial.value == pytest.approx(by_hand[-1]) and by_hand[-1] > by_hand[0] > 0
