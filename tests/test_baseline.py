import json

import pytest
import torch

from prunetune.baseline import baseline_dir, baseline_key, prepare_baseline
from prunetune.errors import ModelError, RunError
from prunetune.models import measure
from prunetune.models.zoo import tiny_resnet


def test_baseline_learns_digits_and_records_what_it_measured(tiny_job):
    job = tiny_job("baseline.epochs=6", "data.train_size=600", "baseline.lr=0.1")
    result = prepare_baseline(job)
    assert not result.reused
    assert result.record.accuracy > 0.6  # ten classes: chance is 0.1
    assert len(result.record.history) == 6
    complexity = measure(result.model, 3, 16)
    saved = json.loads((result.directory / "baseline.json").read_text())
    assert saved["macs"] == complexity.macs and saved["params"] == complexity.params
    assert saved["config_hash"] == baseline_key(job)
    assert saved["bn_statistics"] == "recalibrated" and saved["accuracy_own_bn"] == saved["accuracy"]
    assert saved["preprocessing"]["resize_mode"] == "square" and len(saved["preprocessing"]["mean"]) == 3


def test_equal_config_reuses_the_saved_model(tiny_job):
    first = prepare_baseline(tiny_job())
    second = prepare_baseline(tiny_job("pruning.criterion=vbp"))  # pruning settings do not decide a baseline
    assert second.reused and second.directory == first.directory
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())


def test_changed_baseline_settings_train_a_new_one(tiny_job):
    assert baseline_dir(tiny_job()) != baseline_dir(tiny_job("baseline.epochs=3"))


def test_a_given_baseline_folder_is_used_whatever_the_config_keys(tiny_job, tmp_path):
    # A search's trials prune the driver's baseline, even where their own key would differ.
    first = prepare_baseline(tiny_job())
    pinned = prepare_baseline(tiny_job("baseline.lr=0.3"), directory=first.directory)
    assert pinned.reused and pinned.record == first.record
    with pytest.raises(RunError, match="the search's baseline is missing or incomplete there"):
        prepare_baseline(tiny_job(), directory=tmp_path / "gone")


def test_torn_record_is_not_trusted(tiny_job):
    first = prepare_baseline(tiny_job())
    (first.directory / "baseline.json").write_text("{not json")
    assert not prepare_baseline(tiny_job()).reused


def test_same_seed_gives_the_same_baseline_on_cpu(tiny_job, tmp_path):
    first = prepare_baseline(tiny_job())
    second = prepare_baseline(tiny_job(f"storage.root={tmp_path / 'other'}"))
    assert first.record.accuracy == second.record.accuracy
    assert [r["train_loss"] for r in first.record.history] == [r["train_loss"] for r in second.record.history]


def _teacher(path) -> str:
    return f"recovery.teacher={{name: tiny_resnet, checkpoint: {path}, checkpoint_format: module}}"


def test_a_teacher_is_loaded_frozen_in_eval_mode_with_its_checkpoints_weights(tiny_job, tmp_path):
    saved = tiny_resnet(num_classes=10, width=8)
    torch.save(saved, tmp_path / "teacher.pt")
    job = tiny_job(_teacher(tmp_path / "teacher.pt"), "recovery.teacher.kwargs={width: 8}")
    teacher = prepare_baseline(job).teacher
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(a, b) for a, b in zip(teacher.state_dict().values(), saved.state_dict().values()))


def test_a_teacher_with_another_class_count_is_refused_before_the_baseline_trains(tiny_job, tmp_path):
    torch.save(tiny_resnet(num_classes=5), tmp_path / "teacher.pt")  # a whole module: its head decides
    job = tiny_job(_teacher(tmp_path / "teacher.pt"))
    with pytest.raises(ModelError, match=r"^recovery.teacher: .* outputs \(1, 5\) for one image; the student has 10 "):
        prepare_baseline(job)
    assert not baseline_dir(job).exists()


def test_a_job_with_a_teacher_trains_the_same_baseline_as_without(tiny_job, tmp_path):
    # Building the teacher draws initial weights; the baseline's seeded stream (which the
    # student's dropout reads) must not see it.
    torch.save(tiny_resnet(num_classes=10), tmp_path / "teacher.pt")
    student = ("model.name=mobilenet_v3_small", "baseline.epochs=1", "data.train_size=128")
    plain = prepare_baseline(tiny_job(*student))
    taught = prepare_baseline(tiny_job(*student, _teacher(tmp_path / "teacher.pt"),
                                       f"storage.root={tmp_path / 'other'}"))
    assert not taught.reused and taught.record.accuracy == plain.record.accuracy
    assert all(torch.equal(a, b) for a, b in zip(taught.model.state_dict().values(), plain.model.state_dict().values()))


def test_googlenet_with_its_auxiliary_classifiers_trains_a_baseline(tiny_job):
    # torchvision's default GoogLeNet returns GoogLeNetOutputs (logits, aux2, aux1) in train mode.
    result = prepare_baseline(tiny_job("model.name=googlenet", "model.kwargs.init_weights=false", "baseline.epochs=1",
                                       "data.train_size=64", "data.batch_size=32"))
    (epoch,) = result.record.history
    assert epoch["train_loss"] > 0 and 0.0 <= result.record.accuracy <= 1.0
    assert result.model.aux1 is not None and not result.model.training


def test_on_batch_sees_every_batch_of_every_epoch_and_on_epoch_each_epoch(tiny_job):
    batches, epochs = [], []
    prepare_baseline(tiny_job("baseline.epochs=2"), on_epoch=epochs.append, on_batch=batches.append)
    per_epoch = 256 // 64  # data.train_size / data.batch_size of tiny_job
    assert batches == [{"epoch": e, "epochs": 2, "batch": b, "batches": per_epoch}
                       for e in (1, 2) for b in range(per_epoch + 1)]  # batch 0: the epoch starts
    assert [row["epoch"] for row in epochs] == [1, 2]
