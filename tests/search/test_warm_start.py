"""Warm starts through the CLI: --warm-start OTHER, search.enqueue, and the joint front of `prunetune pareto A B`."""

import io
import json
import shutil
import textwrap

import pandas as pd
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.curves import front_area
from prunetune.results import load, pareto_front
from prunetune.results.experiment import open_search, open_search_study
from prunetune.search.searcher import StudySearch
from prunetune.search.warm_start import OUTSIDE, read_warm_start
from prunetune.spaces import load_search
from prunetune.study import WARM_START
from tests.conftest import SEARCH_JOB

runner = CliRunner()


def _job(folder, name, trials=2, extra=""):
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(SEARCH_JOB.format(name=name, trials=trials, lr="{loguniform: [0.005, 0.05]}",
                                                      min_accuracy="0.0", root=folder / "runs")) + extra)
    return path


@pytest.fixture(scope="module")
def first(tmp_path_factory, ray_session):
    """Search "first": two trials of criterion l1 / bn_gamma and a searched recovery.lr."""
    folder = tmp_path_factory.mktemp("warm")
    result = runner.invoke(app, ["search", str(_job(folder, "first"))])
    assert result.exit_code == 0, result.output
    return folder


def _study(name, root):
    return open_search_study(open_search(name, str(root)))


def test_a_warm_started_search_has_the_first_ones_trials_before_its_first_proposal(first, monkeypatch):
    root = first / "runs"
    theirs = {t.number: t for t in _study("first", root).get_trials() if t.state in (TrialState.COMPLETE,
                                                                                       TrialState.PRUNED)}
    seen = []
    suggest = StudySearch.suggest

    def first_proposal(self, trial_id):
        if not seen:  # the study as the sampler sees it when it proposes this search's first trial
            seen.append(self.study.get_trials(deepcopy=True))
        return suggest(self, trial_id)

    monkeypatch.setattr(StudySearch, "suggest", first_proposal)
    result = runner.invoke(app, ["search", str(_job(first, "second")), "--warm-start", "first"])
    assert result.exit_code == 0, result.output
    assert "warm start from first: 2 trials added" in result.output and "0 skipped" in result.output
    assert result.output.count("warm start from first") == 1
    assert "2/2 finished" in result.output and "2 more from a warm start" in result.output
    before = seen[0]
    assert [t.state for t in before] == [theirs[n].state for n in sorted(theirs)]  # theirs only, nothing of its own
    for added in before:
        original = theirs[added.user_attrs["warm_start_trial"]]
        assert added.user_attrs[WARM_START] == "first"
        assert added.params == original.params  # same space: every setting kept
        assert added.values == original.values  # same objective: recomputed from the rows, the values it was told
        assert added.distributions == original.distributions
    # Its own trials are its own: two of them, its front only over its rows; the first search's rows stay there.
    study = _study("second", root)
    own = [t for t in study.get_trials() if WARM_START not in t.user_attrs]
    assert len(own) == 2 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in own)
    rows = load("second", str(root))
    assert sorted(rows["trial"].unique()) == sorted(t.number for t in own)
    assert len(load("first", str(root))["trial"].unique()) == 2
    assert json.loads((root / "second" / "search.json").read_text())["warm_start"] == {
        "search": "first", "storage": str(root), "added": 2, "skipped": {}}


def test_a_warm_start_recomputes_values_with_the_new_objective_and_skips_settings_outside_the_space(first):
    root = first / "runs"
    job, space = load_search(_job(first, "third"), ["search.objectives=front_area",
                                                   "pruning.criterion={choice: [l1]}"])
    warm = read_warm_start("first", str(root), job, space, "third")
    theirs = {t.number: t for t in _study("first", root).get_trials()}
    kept = [n for n, t in theirs.items() if t.params["pruning.criterion"] == "l1"]
    assert sorted(t.user_attrs["warm_start_trial"] for t in warm.trials) == sorted(kept)
    assert warm.skipped == ({OUTSIDE: len(theirs) - len(kept)} if len(kept) < len(theirs) else {})
    rows = load("first", str(root))
    for added in warm.trials:
        steps = rows[rows["trial"] == added.user_attrs["warm_start_trial"]].sort_values("step").to_dict("records")
        assert added.value == pytest.approx(front_area(steps, "macs"))  # the new objective, from the stored rows
        assert added.intermediate_values == {int(s["step"]): pytest.approx(front_area(steps[:i + 1], "macs"))
                                             for i, s in enumerate(steps)}
    assert warm.differing == () and "note" not in warm.describe()


def test_a_warm_start_names_the_fixed_fields_its_trials_ran_otherwise(first):
    job, space = load_search(_job(first, "fourth"), ["recovery.epochs=2"])
    warm = read_warm_start("first", str(first / "runs"), job, space, "fourth")
    assert len(warm.trials) == 2 and warm.differing == ("recovery.epochs",)
    assert warm.describe().endswith("0 skipped; note: they ran with other values of recovery.epochs, which this "
                                    "search holds fixed (the sampler takes their values as a prior)")


def test_a_warm_start_from_a_search_of_another_baseline_is_refused(first):
    root = first / "runs"
    result = runner.invoke(app, ["search", str(_job(first, "other-baseline")), "baseline.epochs=1",
                                 "--warm-start", "first"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    theirs = open_search("first", str(root)).baseline_key()
    line = result.output.strip().splitlines()[-1]
    assert "--warm-start first: first pruned baseline " + theirs in line and "but other-baseline prunes baseline" in line
    assert not (root / "other-baseline").exists()


def test_a_missing_warm_start_search_is_refused(first):
    result = runner.invoke(app, ["search", str(_job(first, "lonely")), "--warm-start", "nowhere"])
    assert result.exit_code == 2 and "no search named 'nowhere'" in result.output


def test_enqueued_settings_are_the_first_trials_in_order(first):
    result = runner.invoke(app, ["search", str(_job(first, "queued", trials=3)), "search.max_concurrent_trials=1",
                                 "search.enqueue=[{pruning.criterion: bn_gamma, recovery.lr: 0.04}, "
                                 "{recovery.lr: 0.006}]"])
    assert result.exit_code == 0, result.output
    trials = sorted(_study("queued", first / "runs").get_trials(), key=lambda t: t.number)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert trials[0].params == {"pruning.criterion": "bn_gamma", "recovery.lr": 0.04}
    assert trials[1].params["recovery.lr"] == 0.006 and trials[1].params["pruning.criterion"] in ("l1", "bn_gamma")
    assert [t.user_attrs.get("enqueued") for t in trials] == [0, 1, None]


def test_the_joint_front_of_two_searches_names_each_points_search(first):
    root = str(first / "runs")
    names = ["first", "queued"]
    result = runner.invoke(app, ["pareto", *names, "--storage", root, "--format", "csv"])
    assert result.exit_code == 0, result.output
    front = pd.read_csv(io.StringIO(result.output))
    joint = pd.concat([load(name, root).assign(search=name) for name in names], ignore_index=True)
    expected = pareto_front(joint)
    assert list(front.columns[:3]) == ["search", "trial", "step"]
    assert sorted(zip(front["search"], front["trial"], front["step"])) == sorted(
        zip(expected["search"], expected["trial"].astype(int), expected["step"].astype(int)))
    table = runner.invoke(app, ["pareto", *names, "--storage", root])
    assert table.exit_code == 0 and "first + queued: joint Pareto front" in table.output
    header = next(line for line in table.output.splitlines() if " trial " in line and " step " in line)
    assert header.split()[1] == "search"


def test_a_joint_front_of_two_baselines_is_refused(first):
    root = first / "runs"
    shutil.copytree(root / "first", root / "copied")
    meta = json.loads((root / "copied" / "search.json").read_text())
    meta["name"], meta["baseline_key"] = "copied", "0123456789abcdef"
    (root / "copied" / "search.json").write_text(json.dumps(meta))
    result = runner.invoke(app, ["pareto", "first", "copied", "--storage", str(root)])
    assert result.exit_code == 2, result.output
    assert "first and copied pruned different baselines" in result.output and "0123456789abcdef" in result.output


def test_an_added_trials_best_step_is_its_least_costly_by_effective_macs_as_the_new_search_ranks_its_own():
    # Two feasible steps with the same channels (same dense MACs); the second's kernel masks (TKP) make it
    # cheaper in effective MACs: the new search's own trainable would call it the best, and so must its warm start.
    from prunetune.objectives import OBJECTIVES
    from prunetune.search.warm_start import _with_best

    base = {"feasible": True, "macs": 100.0, "mac_ratio": 0.5, "latency_ms": float("nan")}
    rows = [{**base, "step": 1, "accuracy": 0.90, "effective_macs": 90.0},
            {**base, "step": 2, "accuracy": 0.89, "effective_macs": 50.0},
            {**base, "step": 3, "accuracy": 0.95, "feasible": False, "macs": 80.0}]  # stored before TKP: no column
    steps = _with_best(rows, "macs")
    values = OBJECTIVES.get("accuracy_macs").values(steps[-1], steps[:-1])
    assert [values["objective_accuracy"], values["objective_macs"]] == [0.89, 50.0]
    assert steps[2]["effective_macs"] == 80.0  # a row without effective MACs counts as dense
