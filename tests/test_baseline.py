import json

import torch

from prunetune.baseline import baseline_dir, prepare_baseline
from prunetune.models import measure


def test_baseline_learns_digits_and_records_what_it_measured(tiny_job):
    job = tiny_job("baseline.epochs=6", "data.train_size=600", "baseline.lr=0.1")
    result = prepare_baseline(job)
    assert not result.reused
    assert result.record.accuracy > 0.6  # ten classes: chance is 0.1
    assert len(result.record.history) == 6
    complexity = measure(result.model, 3, 16)
    saved = json.loads((result.directory / "baseline.json").read_text())
    assert saved["macs"] == complexity.macs and saved["params"] == complexity.params
    assert saved["config_hash"] == job.baseline_hash()


def test_equal_config_reuses_the_saved_model(tiny_job):
    first = prepare_baseline(tiny_job())
    second = prepare_baseline(tiny_job("pruning.criterion=vbp"))  # pruning settings do not decide a baseline
    assert second.reused and second.directory == first.directory
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())


def test_changed_baseline_settings_train_a_new_one(tiny_job):
    assert baseline_dir(tiny_job()) != baseline_dir(tiny_job("baseline.epochs=3"))


def test_torn_record_is_not_trusted(tiny_job):
    first = prepare_baseline(tiny_job())
    (first.directory / "baseline.json").write_text("{not json")
    assert not prepare_baseline(tiny_job()).reused


def test_same_seed_gives_the_same_baseline_on_cpu(tiny_job, tmp_path):
    first = prepare_baseline(tiny_job())
    second = prepare_baseline(tiny_job(f"storage.root={tmp_path / 'other'}"))
    assert first.record.accuracy == second.record.accuracy
    assert [r["train_loss"] for r in first.record.history] == [r["train_loss"] for r in second.record.history]
