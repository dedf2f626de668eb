"""Cost-rung decisions on hand-made curves (prunetune/rungs.py): no Ray, no training."""

import pytest

from prunetune.rungs import (CONTINUE, ENDED, GRACE, STOP, RungBook, RungSettings, count_rungs, read_records,
                             RUNGS_FILE)

LEVELS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)


def row(step, cost, accuracy, threshold=0.5, baseline=0.95, **extra):
    return {"step": step, "mac_ratio": cost, "accuracy": accuracy, "feasible": accuracy >= threshold,
            "threshold": threshold, "baseline_accuracy": baseline, **extra}


def book(levels=LEVELS, eta=3.0, grace=1, cost="macs", journal=None):
    return RungBook(RungSettings(levels, eta, grace, cost), journal)


def at(records):
    """level -> (accuracy, decision) of new records."""
    return {record.level: (pytest.approx(record.accuracy), record.decision) for record in records}


def test_accuracy_at_a_level_is_interpolated_between_the_step_before_and_the_step_after():
    rungs = book()
    # The curve starts at the dense model (1.0, baseline 0.95); the first step lands at 0.75.
    first = rungs.observe("a", row(1, 0.75, 0.85))
    assert {r.level: r.accuracy for r in first} == {0.9: pytest.approx(0.95 - 0.10 * 0.1 / 0.25),
                                                    0.8: pytest.approx(0.95 - 0.10 * 0.2 / 0.25)}
    second = rungs.observe("a", row(2, 0.55, 0.80))
    assert {r.level: r.accuracy for r in second} == {0.7: pytest.approx(0.85 - 0.05 * 0.05 / 0.2),
                                                     0.6: pytest.approx(0.85 - 0.05 * 0.15 / 0.2)}
    exact = rungs.observe("a", row(3, 0.5, 0.77))
    assert [(r.level, r.accuracy, r.step) for r in exact] == [(0.5, 0.77, 3)]  # a step at the level is its own value


def test_a_step_no_cheaper_than_the_curve_so_far_passes_no_level():
    rungs = book()
    rungs.observe("a", row(1, 0.75, 0.85))
    assert rungs.observe("a", row(2, 0.75, 0.90, phase="final")) == []  # the final fine-tuning: same cost
    assert rungs.observe("a", row(3, 0.78, 0.90)) == []
    assert [r.accuracy for r in rungs.observe("a", row(4, 0.65, 0.80))] == [pytest.approx(0.85)]  # from (0.75, 0.90)


def test_a_step_that_jumps_over_several_levels_records_each_of_them_highest_first():
    rungs = book()
    records = rungs.observe("a", row(1, 0.35, 0.60))
    assert [r.level for r in records] == [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    assert [r.accuracy for r in records] == pytest.approx([0.95 - 0.35 * (1 - level) / 0.65 for level in
                                                           (0.9, 0.8, 0.7, 0.6, 0.5, 0.4)])
    assert {r.step for r in records} == {1}


@pytest.mark.parametrize("eta, decisions", [(2.0, [CONTINUE, STOP, CONTINUE, STOP]),
                                            (4.0, [CONTINUE, STOP, STOP, STOP])])
def test_a_trial_goes_on_only_in_the_top_one_over_eta_of_the_trials_recorded_at_the_rung(eta, decisions):
    rungs = book(levels=(0.5,), eta=eta)
    made = [rungs.observe(trial, row(1, 0.5, accuracy))[0] for trial, accuracy in
            zip("abcd", [0.90, 0.80, 0.85, 0.70])]
    # b: 1 of 2 ahead; c: 1 of 3; d: 3 of 4. eta 2 keeps fewer than n/2 ahead, eta 4 fewer than n/4.
    assert [(r.recorded, r.better) for r in made] == [(1, 0), (2, 1), (3, 1), (4, 3)]
    assert [r.decision for r in made] == decisions
    assert {trial for trial in "abcd" if rungs.stopped_by(trial)} == {t for t, d in zip("abcd", decisions) if d == STOP}


def test_a_rung_stops_nobody_until_grace_trials_are_recorded_there():
    rungs = book(levels=(0.5,), grace=3)
    made = [rungs.observe(trial, row(1, 0.5, accuracy))[0] for trial, accuracy in zip("abcd", [0.9, 0.6, 0.55, 0.5])]
    assert [r.decision for r in made] == [GRACE, GRACE, STOP, STOP]  # c is the third: 2 of 3 ahead


def test_ties_are_never_behind_even_through_interpolation_rounding():
    rungs = book(levels=(0.5,), eta=100.0)  # only a trial nobody beats goes on
    assert rungs.observe("a", row(1, 0.5, 0.8))[0].decision == CONTINUE
    assert rungs.observe("b", row(1, 0.5, 0.8))[0].decision == CONTINUE
    # (0.9 at 0.6 -> 0.7 at 0.4) passes 0.5 at 0.8 up to floating-point rounding
    rungs.observe("c", row(1, 0.6, 0.9, baseline=0.9))
    tied = rungs.observe("c", row(2, 0.4, 0.7))[0]
    assert tied.accuracy != 0.8 and tied.accuracy == pytest.approx(0.8)
    assert (tied.better, tied.decision) == (0, CONTINUE)
    assert rungs.observe("d", row(1, 0.5, 0.7999))[0].decision == STOP


def test_a_trial_that_falls_below_the_threshold_before_a_level_is_not_recorded_there_nor_stopped():
    rungs = book(levels=(0.8, 0.6), grace=2, eta=100.0)
    rungs.observe("a", row(1, 0.85, 0.9))
    assert rungs.observe("a", row(2, 0.82, 0.4)) == []  # below 0.5: the pipeline ends the trial before 0.8
    assert rungs.stopped_by("a") is None
    assert rungs.observe("b", row(1, 0.8, 0.6))[0].decision == GRACE  # a does not count towards grace at 0.8
    assert [r.decision for r in rungs.observe("c", row(1, 0.8, 0.55))] == [STOP]


def test_a_step_below_the_threshold_that_passes_a_level_is_recorded_but_never_stops_its_trial():
    rungs = book(levels=(0.8,), eta=100.0)
    rungs.observe("a", row(1, 0.8, 0.9))
    ended = rungs.observe("b", row(1, 0.7, 0.3))[0]  # 0.95 -> 0.3: at 0.8 about 0.52, feasible; the step is not
    assert (ended.feasible, ended.better, ended.decision) == (True, 1, ENDED)
    assert rungs.stopped_by("b") is None  # its final fine-tuning still runs
    infeasible = rungs.observe("c", row(1, 0.8, 0.7, threshold=0.8))[0]
    assert (infeasible.feasible, infeasible.decision) == (False, ENDED)
    # Feasibility ranks first: c's 0.7 is not ahead of a feasible 0.6 (only a is), and is behind b's 0.52.
    feasible = rungs.observe("d", row(1, 0.8, 0.6, threshold=0.5))[0]
    assert (feasible.better, feasible.decision) == (1, STOP)
    assert rungs.observe("e", row(1, 0.8, 0.65, threshold=0.9))[0].better == 4  # a, b, d, and c above 0.65


def test_latency_rungs_compare_latency_over_the_baselines_latency_not_macs():
    rungs = book(levels=(0.5,), cost="latency_ms")
    assert rungs.observe("a", row(1, 0.3, 0.9, latency_ms=3.0, baseline_latency_ms=4.0)) == []  # 0.75: not yet
    records = rungs.observe("a", row(2, 0.2, 0.8, latency_ms=1.5, baseline_latency_ms=4.0))  # 0.375
    assert [(r.level, r.accuracy) for r in records] == [(0.5, pytest.approx(0.9 - 0.1 * 0.25 / 0.375))]
    assert rungs.observe("b", row(1, 0.3, 0.9)) == []  # no latency measured: no cost, no record


def test_a_trial_run_again_from_its_start_is_recorded_once_per_rung(tmp_path):
    journal = tmp_path / RUNGS_FILE
    assert len(book(levels=(0.5,), journal=journal).observe("a", row(1, 0.5, 0.9))) == 1
    resumed = book(levels=(0.5,), journal=journal)  # `prunetune resume --errored` runs it again
    assert resumed.observe("a", row(1, 0.4, 0.7)) == []
    assert len(resumed.observe("b", row(1, 0.4, 0.7))) == 1
    assert [r.trial_id for r in read_records(journal)] == ["a", "b"]


CURVES = {  # trial -> its steps (cost, accuracy), in arrival order across trials
    "a": [(0.85, 0.93), (0.65, 0.90), (0.45, 0.84)],
    "b": [(0.85, 0.90), (0.65, 0.80)],
    "c": [(0.7, 0.94), (0.45, 0.91)],
    "d": [(0.85, 0.92), (0.65, 0.86), (0.45, 0.83)],
    "e": [(0.55, 0.85), (0.35, 0.70)],
}
ARRIVALS = ["a", "b", "a", "c", "b", "d", "a", "c", "d", "e", "d", "e"]


def _feed(rungs, arrivals, position):
    for trial in arrivals:
        if rungs.stopped_by(trial) is None:
            step = position[trial] = position.get(trial, 0) + 1
            cost, accuracy = CURVES[trial][step - 1]
            rungs.observe(trial, row(step, cost, accuracy), ord(trial) - ord("a"))


def test_a_book_reopened_on_its_journal_goes_on_with_the_same_records_and_decisions(tmp_path):
    whole = book(eta=2.0, grace=2)
    _feed(whole, ARRIVALS, {})
    assert any(record.decision == STOP for record in whole.records)
    journal = tmp_path / RUNGS_FILE
    first, position = book(eta=2.0, grace=2, journal=journal), {}
    _feed(first, ARRIVALS[:6], position)
    with journal.open("a") as file:
        file.write('{"rung": 3, "level"')  # a line the kill cut short
    resumed = book(eta=2.0, grace=2, journal=journal)
    assert resumed.records == first.records
    resumed.cheapest = dict(first.cheapest)  # the trials in flight carry on
    _feed(resumed, ARRIVALS[6:], position)
    assert resumed.records == whole.records
    assert read_records(journal) == whole.records


def test_rung_counts_name_the_trials_each_rung_stopped_once():
    rungs = book(levels=(0.9, 0.8), eta=100.0)
    rungs.observe("a", row(1, 0.75, 0.9), 0)
    rungs.observe("b", row(1, 0.75, 0.8), 1)  # behind at 0.9 and at 0.8: stopped at 0.9
    counts = count_rungs(rungs.settings, rungs.records)
    assert [(c.level, c.recorded, c.stopped) for c in counts] == [(0.9, 2, (1,)), (0.8, 2, ())]
    assert counts[0].best == pytest.approx(0.95 - 0.05 * 0.1 / 0.25)


@pytest.mark.parametrize("settings", [dict(levels=()), dict(levels=(1.0,)), dict(reduction_factor=1.0),
                                      dict(grace=0), dict(cost="watts")])
def test_rung_settings_built_outside_a_config_are_checked_too(settings):
    with pytest.raises(ValueError):
        RungSettings(**settings)


def test_the_rungs_section_is_checked_once_and_its_levels_kept_highest_first(tmp_path):
    from typer.testing import CliRunner

    from prunetune.cli import app
    from prunetune.config import load_config

    config = load_config(None, ["search.scheduler=rungs", "search.rungs.levels=[0.5, 0.8, 0.65]"])
    assert config.search.rungs.levels == (0.8, 0.65, 0.5)
    job = tmp_path / "job.yaml"
    job.write_text("search: {rungs: {grace: 2}}\n")
    for overrides, message in [([], "search.rungs: grace is 2, but search.scheduler 'fifo' does not read "
                                    "this section"),
                               (["search.scheduler=rungs", "search.rungs.levels=[0.5, 0.5]"],
                                "search.rungs.levels: a level appears twice"),
                               (["search.scheduler=rungs", "search.rungs.reduction_factor=1"],
                                "search.rungs.reduction_factor: Input should be greater than 1"),
                               (["search.scheduler=asha"], "unknown scheduler 'asha'; known: fifo, rungs")]:
        shown = CliRunner().invoke(app, ["config", str(job), *overrides])
        assert shown.exit_code == 2 and message in shown.output, shown.output


def test_the_rung_logic_loads_neither_ray_nor_torch_nor_optuna():
    from tests.results.test_imports import run_fresh

    loaded = run_fresh("import sys\nimport prunetune.rungs, prunetune.curves, prunetune.schedulers\n"
                       "print(' '.join(m for m in ('ray', 'torch', 'optuna') if m in sys.modules))")
    assert loaded == ""
