"""A real tiny search read back through prunetune.results: store, rebuild, front, export, report, CLI."""

import io
import json
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from prunetune.baseline import prepare_baseline
from prunetune.cli import app
from prunetune.registry import OBJECTIVES
from prunetune.results import export_model, load, pareto_front, rebuild
from prunetune.results.experiment import open_search, open_search_study
from prunetune.results.importance import trial_front_volumes
from prunetune.search import run_search
from prunetune.search.recording import ResultsRecorder
from prunetune.spaces import load_search
from tests.conftest import SEARCH_JOB
from tests.ray_records import ray_results


@pytest.fixture(scope="module")
def searched(tmp_path_factory, ray_session):
    """Four trials (l1 / bn_gamma, two steps each); trial stop thresholds make some rows infeasible."""
    root = tmp_path_factory.mktemp("results")
    path = root / "res.yaml"
    path.write_text(textwrap.dedent(SEARCH_JOB.format(name="res", trials=4, lr="0.01",
                                                      min_accuracy="{choice: [0.0, 0.99]}", root=root / "runs")))
    job, space = load_search(path, [])
    outcome = run_search(job, space, verbose=0)
    return job, outcome


def test_every_reported_step_is_a_row_with_config_params_and_checkpoint(searched):
    job, outcome = searched
    rows = load("res", job.storage.root)
    study = open_search_study(open_search("res", job.storage.root))
    finished = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    assert sorted(rows["trial"].unique()) == sorted(t.number for t in finished)
    for trial in finished:
        mine = rows[rows["trial"] == trial.number].sort_values("step")
        reported = ray_results(outcome.home, trial.user_attrs["ray_trial_id"])
        assert list(mine["accuracy"]) == list(reported["accuracy"])  # the same steps, the same values
        assert list(mine["macs"]) == list(reported["macs"])
        assert (mine["param.pruning.criterion"] == trial.params["pruning.criterion"]).all()
        assert (mine["config.pruning.criterion"] == trial.params["pruning.criterion"]).all()
        assert (mine["config.model.name"] == "tiny_cnn").all()
    # Every feasible step kept its model (storage.step_models: feasible), no infeasible one did.
    assert (rows.loc[rows["feasible"], "checkpoint"] != "").all()
    assert (rows.loc[~rows["feasible"], "checkpoint"] == "").all()
    assert (~rows["feasible"]).any(), "the 0.99 threshold should make some steps infeasible"


def test_the_front_is_feasible_and_matches_the_studys_best_trials(searched):
    job, _ = searched
    rows = load("res", job.storage.root)
    front = pareto_front(rows)
    assert not front.empty and front["feasible"].all()
    study = open_search_study(open_search("res", job.storage.root))
    # A trial's objective values are its best feasible step: every study-best point is a row,
    # and no row of the step front is dominated by a study-best point.
    for best in study.best_trials:
        assert ((rows["trial"] == best.number) & (rows["accuracy"] == best.values[0])
                & (rows["macs"] == best.values[1])).any()


def test_a_lost_store_is_rebuilt_from_rays_trial_folders(searched):
    job, outcome = searched
    live = load("res", job.storage.root)
    (outcome.home / "results.parquet").unlink()
    rebuilt = load("res", job.storage.root)  # missing -> rebuilt and written
    assert (outcome.home / "results.parquet").is_file()
    key = ["trial", "step"]
    pd.testing.assert_frame_equal(live.sort_values(key).reset_index(drop=True)[sorted(live.columns)],
                                  rebuilt.sort_values(key).reset_index(drop=True)[sorted(live.columns)],
                                  check_dtype=False)
    assert len(rebuild(open_search("res", job.storage.root))) == len(live)


def test_a_starting_search_adds_the_rows_ray_recorded_that_its_store_lacks(searched):
    job, outcome = searched
    live = load("res", job.storage.root)
    live.drop(index=[0, len(live) - 1]).to_parquet(outcome.home / "results.parquet", index=False)
    saved = open_search("res", job.storage.root)
    recorder = ResultsRecorder(saved.home, saved.name, saved.storage, saved.job, saved.space, open_search_study(saved))
    recorder.setup()  # what Ray calls when a search starts or resumes
    caught_up = load("res", job.storage.root)
    key = ["trial", "step"]
    pd.testing.assert_frame_equal(live.sort_values(key).reset_index(drop=True)[sorted(live.columns)],
                                  caught_up.sort_values(key).reset_index(drop=True)[sorted(live.columns)],
                                  check_dtype=False)


def test_an_exported_front_model_reproduces_its_accuracy_in_a_fresh_process(searched, tmp_path, capfd, caplog):
    job, _ = searched
    rows = load("res", job.storage.root)
    chosen = pareto_front(rows).iloc[0]
    capfd.readouterr()
    caplog.clear()
    exported = export_model("res", int(chosen["trial"]), int(chosen["step"]), tmp_path / "model.pt",
                            job.storage.root, portable=True)
    written = capfd.readouterr()
    # torch warns (through logging: stderr in the CLI) about a .pt2 written to a name not ending in .pt2
    assert "Expect archive file" not in written.err + written.out + caplog.text
    baseline = prepare_baseline(job)  # the search's baseline, reused by its config hash
    loaders = baseline.loaders
    images, labels = zip(*[(x.cpu(), y.cpu()) for x, y in loaders.val])
    torch.save({"x": torch.cat(images), "y": torch.cat(labels)}, tmp_path / "val.pt")
    probe = textwrap.dedent(f"""
        import sys, json, torch
        data = torch.load({str(tmp_path / 'val.pt')!r})
        kind = sys.argv[1]
        if kind == "pt2":
            files = {{"metadata.json": ""}}
            model = torch.export.load({str(exported.program)!r}, extra_files=files).module()
            metadata = json.loads(files["metadata.json"])
        else:
            payload = torch.load({str(exported.path)!r}, weights_only=False)
            model, metadata = payload["model"], payload["metadata"]
        with torch.no_grad():
            accuracy = (model(data["x"]).argmax(1) == data["y"]).float().mean().item()
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("prunetune", "torch_pruning", "ray", "optuna"))
        print(json.dumps({{"accuracy": accuracy, "loaded": loaded, "metadata": metadata}}))
    """)
    for kind in ("pt2", "pt"):
        done = subprocess.run([sys.executable, "-c", probe, kind], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        measured = json.loads(done.stdout)
        assert abs(measured["accuracy"] - chosen["accuracy"]) <= 0.005
        metadata = measured["metadata"]  # what a deployer needs, in both files
        assert metadata["class_names"] == [str(digit) for digit in range(10)]
        assert (metadata["source"], metadata["experiment"], metadata["trial"], metadata["step"]) == (
            "search", "res", int(chosen["trial"]), int(chosen["step"]))
        assert metadata["input"]["shape"] == ["batch", 3, 16, 16]
        normalize = metadata["preprocessing"][-1]
        assert normalize["op"] == "normalize" and normalize["mean"] == pytest.approx(baseline.splits.mean)
        assert normalize["std"] == pytest.approx(baseline.splits.std)
        assert metadata["metrics"]["accuracy"] == chosen["accuracy"]
        if kind == "pt2":
            assert measured["loaded"] == []  # torch alone
        else:  # tiny_cnn's class lives in prunetune's model zoo; no pruning / search code is needed
            assert not [m for m in measured["loaded"] if m.startswith(("prunetune.pruning", "torch_pruning", "ray"))]
    metadata = torch.load(exported.path, weights_only=False)["metadata"]
    assert (metadata["trial"], metadata["step"]) == (int(chosen["trial"]), int(chosen["step"]))
    assert metadata["metrics"]["accuracy"] == chosen["accuracy"]
    assert metadata["config"]["pruning"]["criterion"] == chosen["config.pruning.criterion"]


def test_exporting_a_step_without_a_model_names_the_steps_that_have_one(searched, tmp_path):
    job, _ = searched
    rows = load("res", job.storage.root)
    bad = rows[~rows["feasible"]].iloc[0]
    result = CliRunner().invoke(app, ["export", "res", "--trial", str(int(bad["trial"])), "--step",
                                      str(int(bad["step"])), "-o", str(tmp_path / "m.pt"), "--storage",
                                      job.storage.root])
    assert result.exit_code == 2
    assert "below the accuracy threshold" in result.output and "with a model" in result.output
    missing = CliRunner().invoke(app, ["export", "res", "--trial", "0", "--step", "9", "-o", str(tmp_path / "m.pt"),
                                       "--storage", job.storage.root])
    assert missing.exit_code == 2 and "no row for trial 0 step 9; trial 0 has steps" in missing.output


def test_pareto_cli_prints_the_front_in_each_format_and_filters_budgets(searched):
    job, _ = searched
    rows = load("res", job.storage.root)
    front = pareto_front(rows)
    runner = CliRunner()
    as_json = runner.invoke(app, ["pareto", "res", "--storage", job.storage.root, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    records = json.loads(as_json.output)
    assert [(r["trial"], r["step"]) for r in records] == list(zip(front["trial"], front["step"]))
    # Raw numbers with their units in the names, and each searched setting with its own type.
    for record, (_, row) in zip(records, front.iterrows()):
        assert record["accuracy"] == row["accuracy"] and record["mac_ratio"] == row["mac_ratio"]
        assert record["macs"] == row["macs"] and record["params"] == row["params"]
        assert record["pruning.criterion"] == row["param.pruning.criterion"]
        assert record["stop.min_accuracy"] == row["param.stop.min_accuracy"]
        assert isinstance(record["macs"], int) and isinstance(record["stop.min_accuracy"], float)
    as_csv = runner.invoke(app, ["pareto", "res", "--storage", job.storage.root, "--format", "csv"])
    from_csv = pd.read_csv(io.StringIO(as_csv.output))
    assert list(from_csv.columns[:8]) == ["trial", "step", "phase", "feasible", "accuracy", "macs", "mac_ratio",
                                          "params"]
    assert from_csv["accuracy"].tolist() == front["accuracy"].tolist()
    assert from_csv["macs"].tolist() == front["macs"].tolist()
    table = runner.invoke(app, ["pareto", "res", "--storage", job.storage.root])
    assert "Pareto front" in table.output
    cheapest = front["macs"].min()
    filtered = runner.invoke(app, ["pareto", "res", "--storage", job.storage.root, "--format", "json",
                                   "--max-macs", str(int(cheapest))])
    assert len(json.loads(filtered.output)) == 1
    none = runner.invoke(app, ["pareto", "res", "--storage", job.storage.root, "--min-accuracy", "1.01"])
    assert none.exit_code == 1 and "no step meets the filters" in none.output
    unknown = runner.invoke(app, ["pareto", "nope", "--storage", job.storage.root])
    assert unknown.exit_code == 2 and "no search named 'nope'" in unknown.output


def test_report_writes_labelled_pngs_and_a_page_that_shows_them(searched, tmp_path):
    job, _ = searched
    result = CliRunner().invoke(app, ["report", "res", "-o", str(tmp_path / "report"), "--storage", job.storage.root])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "report"
    for name in ("accuracy_vs_macs.png", "accuracy_vs_sparsity.png"):
        with Image.open(folder / name) as image:
            assert image.size[0] >= 800 and image.size[1] >= 600
        assert name in (folder / "index.html").read_text()
    page = (folder / "index.html").read_text()
    assert "Pareto front" in page and "<table" in page


def test_tensorboard_holds_every_epoch_and_every_step_of_each_trial_under_the_home(searched):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job, outcome = searched
    rows = load("res", job.storage.root)
    runs = sorted(path.name for path in (outcome.home / "tensorboard").iterdir())
    assert runs == [f"trial_{number}" for number in sorted(rows["trial"].unique())]
    for number, steps in rows.groupby("trial"):
        events = EventAccumulator(str(outcome.home / "tensorboard" / f"trial_{number}")).Reload()
        steps = steps.sort_values("step")
        accuracy = events.Scalars("step/accuracy")
        assert [point.step for point in accuracy] == list(steps["step"])
        assert [point.value for point in accuracy] == pytest.approx(list(steps["accuracy"]), abs=1e-6)
        assert [p.value for p in events.Scalars("step/mac_ratio")] == pytest.approx(list(steps["mac_ratio"]), abs=1e-6)
        # Every recovery epoch, numbered along the trial: one per epoch the steps ran.
        epochs = events.Scalars("epoch/val_accuracy")
        assert [point.step for point in epochs] == list(range(1, int(steps["epochs_run"].sum()) + 1))
        # The model's size in each epoch: each step's MAC ratio for its recovery epochs (a staircase at the cuts).
        sizes = [ratio for ratio, count in zip(steps["mac_ratio"], steps["epochs_run"]) for _ in range(count)]
        assert [point.value for point in events.Scalars("epoch/mac_ratio")] == pytest.approx(sizes, abs=1e-6)
        assert {"epoch/train_loss", "epoch/lr", "step/threshold", "step/accuracy_before_recovery"} <= \
            set(events.Tags()["scalars"])
    # Ray's own logger (one point per step, into its trial folders) is off.
    assert not list(outcome.home.glob("*/events.out.tfevents.*"))


def test_the_study_holds_every_step_of_each_trial_for_the_dashboard(searched):
    job, _ = searched
    rows = load("res", job.storage.root)
    study = open_search_study(open_search("res", job.storage.root))
    volumes = trial_front_volumes(rows, OBJECTIVES.get("accuracy_macs"))
    for trial in study.get_trials():
        steps = rows[rows["trial"] == trial.number].sort_values("step")
        if steps.empty:
            continue
        recorded = {int(key.split("_")[1]): value for key, value in trial.user_attrs.items() if key.startswith("step_")}
        assert sorted(recorded) == list(steps["step"])
        for _, row in steps.iterrows():
            assert recorded[row["step"]] == {  # four decimals: one readable line on the dashboard's trial page
                "accuracy": round(row["accuracy"], 4), "accuracy_before_recovery": round(row["pre_accuracy"], 4),
                "mac_ratio": round(row["mac_ratio"], 4), "macs": row["macs"], "sparsity": round(row["sparsity"], 4),
                "feasible": bool(row["feasible"])}
        assert trial.user_attrs["feasible_steps"] == int(steps["feasible"].sum())
        assert trial.user_attrs["front_hypervolume"] == pytest.approx(volumes[trial.number], abs=1e-8)
    assert any(trial.user_attrs.get("front_hypervolume", 0) > 0 for trial in study.get_trials())
