import json
import subprocess
import sys

import pytest
import torch
import typer.main
from typer.testing import CliRunner

from prunetune.cli import app

runner = CliRunner()


@pytest.fixture
def job_file(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(
        f"storage:\n  root: {tmp_path / 'runs'}\nmodel:\n  name: tiny_cnn\n"
        "data:\n  image_size: 16\n  train_size: 128\n  calibration_size: 32\n  batch_size: 64\n"
        "baseline:\n  epochs: 1\n"
    )
    return path


def _fails_cleanly(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output


# Read from the app, so a new command is covered without touching this test.
COMMANDS = sorted(typer.main.get_command(app).commands)


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)], ids=["prunetune", *COMMANDS])
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_out_of_range_value_exits_2_with_field_value_and_range(job_file):
    result = runner.invoke(app, ["baseline", str(job_file), "baseline.epochs=-1"])
    _fails_cleanly(result, "baseline.epochs", "got -1", "greater than or equal to 0")


def test_unknown_dataset_exits_2_listing_known_ones(job_file):
    result = runner.invoke(app, ["baseline", str(job_file), "data.name=mnist"])
    _fails_cleanly(result, "unknown dataset 'mnist'", "cifar10, cifar100, digits, imagefolder, shapes")


def test_missing_data_path_exits_2_naming_the_field(job_file, tmp_path):
    result = runner.invoke(app, ["baseline", str(job_file), "data.name=cifar10", f"data.root={tmp_path}/none"])
    _fails_cleanly(result, "data.root", "never downloads")


def test_run_refuses_a_teacher_of_another_class_count_with_exit_2_before_the_baseline_trains(job_file, tmp_path):
    from prunetune.models.zoo import tiny_resnet

    torch.save(tiny_resnet(num_classes=5).state_dict(), tmp_path / "teacher.pt")  # digits has 10 classes
    teacher = f"recovery.teacher={{name: tiny_resnet, checkpoint: {tmp_path / 'teacher.pt'}}}"
    result = runner.invoke(app, ["run", str(job_file), teacher])
    _fails_cleanly(result, "recovery.teacher.checkpoint:", "torch.Size([5,", "the student's 10 classes")
    assert not (tmp_path / "runs" / "baselines").exists()


def test_unknown_model_exits_2(job_file):
    result = runner.invoke(app, ["baseline", str(job_file), "model.name=resnet181"])
    _fails_cleanly(result, "model.name: unknown model 'resnet181'", "did you mean resnet18")


def test_bad_checkpoint_exits_2_saying_what_was_expected(job_file, tmp_path):
    wrong = tmp_path / "wrong.pt"
    torch.save({"layer.weight": torch.zeros(3)}, wrong)
    result = runner.invoke(app, ["baseline", str(job_file), f"model.checkpoint={wrong}"])
    _fails_cleanly(result, "model.checkpoint", "is a state_dict that does not fit model")


def test_missing_config_file_exits_2(tmp_path):
    _fails_cleanly(runner.invoke(app, ["baseline", str(tmp_path / "absent.yaml")]), "does not exist")


def test_config_prints_the_resolved_config(job_file):
    result = runner.invoke(app, ["config", str(job_file), "seed=5"])
    assert result.exit_code == 0 and "seed: 5" in result.output and "kd_temperature: 4.0" in result.output


def _never(*args, **kwargs):
    raise AssertionError("reached after the space should have been refused")


def test_config_and_search_refuse_a_shared_field_alike_before_any_baseline_or_ray(tmp_path, monkeypatch):
    monkeypatch.setattr("prunetune.search.driver.prepare_baseline", _never)
    monkeypatch.setattr("prunetune.search.driver._init_ray", _never)
    path = tmp_path / "shared.yaml"
    path.write_text(f"storage:\n  root: {tmp_path / 'runs'}\nmodel:\n  name: tiny_cnn\n"
                    "search:\n  space:\n    baseline.epochs: {choice: [1, 2]}\n")
    checked, searched = (runner.invoke(app, [command, str(path)]) for command in ("config", "search"))
    _fails_cleanly(checked, "search.space.baseline.epochs: ", "decide the baseline every trial shares",
                   "baseline.epochs cannot be searched")
    assert searched.exit_code == 2 and searched.output == checked.output
    assert len(checked.output.strip().splitlines()) == 1 and not (tmp_path / "runs").exists()


def test_config_refuses_an_unknown_model_in_one_line(job_file):
    result = runner.invoke(app, ["config", str(job_file), "model.name=resnet181"])
    _fails_cleanly(result, "model.name: unknown model 'resnet181'", "did you mean resnet18")
    assert len(result.output.strip().splitlines()) == 1


def test_an_error_holding_square_brackets_reaches_the_terminal_intact(job_file):
    # Rich markup would read "[low, high]" as a tag and print "needs , got [0.1]".
    result = runner.invoke(app, ["config", str(job_file), "search.space={recovery.lr: {uniform: [0.1]}}"])
    _fails_cleanly(result, "search.space.recovery.lr: uniform needs [low, high], got [0.1]")
    assert result.output.startswith("error: invalid config")


@pytest.mark.parametrize("content", [b"name: caf\xe9\n", bytes(range(256)) * 4], ids=["latin-1", "binary"])
def test_a_config_file_that_is_not_utf8_exits_2_in_one_line_naming_it(tmp_path, content):
    path = tmp_path / "job.yaml"
    path.write_bytes(content)
    result = runner.invoke(app, ["config", str(path)])
    _fails_cleanly(result, f"config file '{path}' is not UTF-8 text")
    assert len(result.output.strip().splitlines()) == 1


def test_a_yaml_syntax_error_exits_2_in_one_line_naming_file_line_and_column(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("name: x\nrecovery:\n  lr: [1, 2\n  epochs: 3\n")
    result = runner.invoke(app, ["config", str(path)])
    _fails_cleanly(result, f"config file '{path}' is not valid YAML at line 4, column 9: expected ',' or ']'")
    assert len(result.output.strip().splitlines()) == 1


def test_config_refuses_a_non_finite_rate_a_negative_seed_and_an_empty_schedule(job_file):
    for override, message in (("recovery.lr=inf", "recovery.lr: Input should be a finite number"),
                              ("seed=-1", "seed: Input should be greater than or equal to 0"),
                              ("pruning.schedule.targets=[]", "pruning.schedule.targets: Tuple should have at least")):
        _fails_cleanly(runner.invoke(app, ["config", str(job_file), override]), message)


def test_list_datasets_and_unknown_kind():
    lines = runner.invoke(app, ["list", "datasets"]).output.splitlines()
    assert lines[0] == "datasets:" and [line.split()[0] for line in lines[1:]] == ["cifar10", "cifar100", "digits",
                                                                                  "imagefolder", "shapes"]
    _fails_cleanly(runner.invoke(app, ["list", "kernels"]), "unknown kind 'kernels'; known: datasets, models, scopes, "
                   "criteria, reductions, schedules, repairs, optimizers, lr-schedules, objectives, samplers, "
                   "schedulers, tkp-regularisers")


def test_list_shows_every_registry_with_its_names():
    from prunetune.registry import LISTED

    output = runner.invoke(app, ["list"]).output
    for kind, names in LISTED.items():
        assert f"{kind}:" in output
        assert all(f"  {name} " in output or output.count(f"  {name}\n") for name in names.names()), kind


def test_baseline_command_writes_run_directory_then_reuses_it(job_file, tmp_path):
    first = runner.invoke(app, ["baseline", str(job_file)])
    assert first.exit_code == 0, first.output
    assert "[baseline | epoch 1/1]" in first.output and "trained in" in first.output
    (directory,) = (tmp_path / "runs" / "baselines").iterdir()
    record = json.loads((directory / "baseline.json").read_text())
    assert set(record) >= {"accuracy", "loss", "macs", "params", "config_hash"}
    stamp = (directory / "model.pt").stat().st_mtime_ns
    second = runner.invoke(app, ["baseline", str(job_file)])
    assert second.exit_code == 0 and "reused" in second.output and "epoch 1/1" not in second.output
    assert (directory / "model.pt").stat().st_mtime_ns == stamp


def test_run_writes_its_directory_once_under_the_storage_root(job_file, tmp_path):
    result = runner.invoke(app, ["run", str(job_file), "pruning.scope=all", "pruning.schedule.targets=[0.2]",
                                 "recovery.epochs=1"])
    assert result.exit_code == 0, result.output
    root = tmp_path / "runs"
    (directory,) = [path for path in root.iterdir() if path.name != "baselines"]
    assert directory.name.startswith("prunetune-")  # <storage.root>/<name>-<time>, beside the search homes
    assert (directory / "rows.parquet").is_file() and str(directory / "rows.parquet") in result.output
    assert not (root / "runs").exists()


def test_installed_entry_point_exits_2_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "prunetune.cli", "config", str(tmp_path / "x.yaml"),
                             "data.image_size=2"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_more_enqueued_settings_than_trials_is_refused_before_ray_starts(job_file, tmp_path, monkeypatch):
    monkeypatch.setattr("prunetune.search.driver._init_ray", _never)
    result = runner.invoke(app, ["search", str(job_file), "search.num_samples=2",
                                 "search.space={recovery.lr: {loguniform: [1.0e-4, 1.0e-2]}}",
                                 "search.enqueue=[{recovery.lr: 1.0e-3}, {recovery.lr: 2.0e-3}, {recovery.lr: 3.0e-3}]"])
    _fails_cleanly(result, "search.enqueue: 3 settings, but the search runs 2 trials (search.num_samples / "
                           "--num-samples): the last 1 would never run; allowed: at most 2 settings")
    assert not (tmp_path / "runs").exists()
