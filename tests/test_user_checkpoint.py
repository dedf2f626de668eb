"""The user's path through the CLI: a tiny_cnn trained by a plain torch loop outside prunetune,
saved as a state_dict, on an ImageFolder tree of PNGs the test writes, with
``model.checkpoint`` and ``baseline.epochs: 0`` (issue 15, items 1-4).

The checkpoint's BN running statistics are deliberately stale (trained with BN momentum
0.002 on inputs that are not centred), as a model trained elsewhere often has them.
"""

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from prunetune.baseline import baseline_dir
from prunetune.cli import app
from prunetune.config import load_config
from prunetune.models.zoo import tiny_cnn
from tests.user_path import CLASSES, WIDTH, job_yaml, own_eval, train_checkpoint, user_transform, write_stripes

runner = CliRunner()
# The user's own preprocessing: resize 18, centre crop 16, pixels in [0, 1] unnormalised.
USER_MEAN, USER_STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
AS_THE_USER = {"mean": "[0, 0, 0]", "std": "[1, 1, 1]", "eval_crop_fraction": 0.888889}  # 16 / 0.888889 -> 18
USER_TRANSFORMS = """
from torchvision import transforms


def build(train):
    flip = [transforms.RandomHorizontalFlip()] if train else []
    return transforms.Compose([transforms.Resize(18), transforms.CenterCrop(16), *flip, transforms.ToTensor()])
"""


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    tree = write_stripes(folder / "tree")
    transform = user_transform(mean=USER_MEAN, std=USER_STD)
    model = train_checkpoint(tree, transform, folder / "model.pt", bn_momentum=0.002, epochs=2)
    return SimpleNamespace(tree=tree, checkpoint=folder / "model.pt", model=model, transform=transform,
                           own=own_eval(model, tree, transform))


def _baseline(job, *overrides):
    """The CLI's output and the baseline.json of ``prunetune baseline JOB OVERRIDES``."""
    result = runner.invoke(app, ["baseline", str(job), *overrides])
    assert result.exit_code == 0, result.output
    record = json.loads((baseline_dir(load_config(job, list(overrides))) / "baseline.json").read_text())
    return result.output, record


def test_a_checkpoint_with_stale_bn_statistics_is_measured_recalibrated_like_every_pruned_step(user, tmp_path):
    job = job_yaml(tmp_path, user.tree, user.checkpoint, **AS_THE_USER)
    output, record = _baseline(job)
    assert "baseline (measured)" in output
    # Both ways: the checkpoint's own statistics give what the user's own loop gives ...
    assert record["accuracy_own_bn"] == pytest.approx(user.own[0])
    # ... and the baseline every step is compared with has them re-estimated, as each step's repair does.
    assert record["bn_statistics"] == "recalibrated"
    assert record["accuracy"] == record["accuracy_recalibrated_bn"] >= record["accuracy_own_bn"] + 0.3
    both = (f"{record['accuracy']:.4f} (BN statistics re-estimated on 60 calibration images; "
            f"{record['accuracy_own_bn']:.4f} with the model's own)")
    assert both in output
    run = runner.invoke(app, ["run", str(job), f"--dir={tmp_path / 'run'}"])
    assert run.exit_code == 0, run.output
    assert f"[baseline] reused: accuracy {both}, MACs" in run.output
    assert f"threshold {record['accuracy'] - 0.01:.4f}" in run.output  # stop.max_accuracy_drop 0.01


def test_recalibrate_bn_false_keeps_the_checkpoints_statistics_and_still_reports_both(user, tmp_path):
    job = job_yaml(tmp_path, user.tree, user.checkpoint, **AS_THE_USER)
    output, record = _baseline(job, "baseline.recalibrate_bn=false")
    assert record["bn_statistics"] == "own"
    assert record["accuracy"] == record["accuracy_own_bn"] == pytest.approx(user.own[0])
    assert record["loss"] == pytest.approx(user.own[1], rel=1e-4)
    assert record["accuracy_recalibrated_bn"] >= record["accuracy"] + 0.3
    assert (f"{record['accuracy']:.4f} (BN statistics: the model's own, kept as baseline.recalibrate_bn is false; "
            f"{record['accuracy_recalibrated_bn']:.4f} re-estimated)") in output
    saved = torch.load(baseline_dir(load_config(job, ["baseline.recalibrate_bn=false"])) / "model.pt")
    checkpoint = torch.load(user.checkpoint)
    assert all(torch.equal(saved[name], checkpoint[name]) for name in checkpoint if "running" in name)


def test_an_overwritten_checkpoint_is_measured_again_and_a_moved_one_is_reused(user, tmp_path):
    checkpoint = tmp_path / "model.pt"
    shutil.copy(user.checkpoint, checkpoint)
    job = job_yaml(tmp_path, user.tree, checkpoint, **AS_THE_USER, calibration_size=90)
    _, first = _baseline(job)
    torch.manual_seed(1)
    other = tiny_cnn(num_classes=len(CLASSES), width=WIDTH).eval()
    torch.save(other.state_dict(), checkpoint)  # other weights, same path
    output, second = _baseline(job)
    assert "baseline (measured)" in output and "reused" not in output
    assert second["config_hash"] != first["config_hash"]
    assert second["accuracy_own_bn"] == pytest.approx(own_eval(other, user.tree, user.transform)[0])
    moved = tmp_path / "elsewhere.pt"
    shutil.move(checkpoint, moved)
    output, third = _baseline(job, f"model.checkpoint={moved}")
    assert "baseline (reused)" in output and third == second  # the content decides, not the path


def test_how_batches_are_served_reuses_the_baseline_and_the_calibration_size_does_not(user, tmp_path):
    job = job_yaml(tmp_path, user.tree, user.checkpoint, **AS_THE_USER)
    _, first = _baseline(job)
    for served in ("data.num_workers=1", "data.eval_batch_size=7", "data.device_resident=never",
                   "data.batch_size=4", "baseline.lr=0.5"):  # the last two: only training sees them
        output, record = _baseline(job, served)
        assert "baseline (reused)" in output and record == first, served
    # The calibration split is what the baseline's BN statistics are re-estimated on.
    output, record = _baseline(job, "data.calibration_size=30")
    assert "baseline (measured)" in output and record["calibration_images"] == 30


def test_the_users_mean_std_and_crop_reproduce_their_own_evaluation(user, tmp_path):
    job = job_yaml(tmp_path, user.tree, user.checkpoint, **AS_THE_USER)
    _, record = _baseline(job, "baseline.recalibrate_bn=false")
    assert (record["accuracy"], record["loss"]) == pytest.approx(user.own, rel=1e-4)
    assert record["preprocessing"] == {"image_size": 16, "channels": 3, "resize": 18, "resize_mode": "shorter_side",
                                       "crop": 16, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
                                       "interpolation": "bilinear", "transform": None}
    # prunetune's defaults (ImageNet mean and std, resize 18 -> 18.29 -> 18) feed the model other pixels.
    _, default = _baseline(job, "baseline.recalibrate_bn=false", "data.mean=null", "data.std=null")
    assert default["loss"] != pytest.approx(user.own[1], rel=1e-2)


def test_a_callable_transform_reproduces_the_users_own_evaluation(user, tmp_path, monkeypatch):
    (tmp_path / "user_transforms.py").write_text(USER_TRANSFORMS)
    monkeypatch.syspath_prepend(str(tmp_path))
    job = job_yaml(tmp_path, user.tree, user.checkpoint, transform="user_transforms:build")
    _, record = _baseline(job, "baseline.recalibrate_bn=false")
    assert (record["accuracy"], record["loss"]) == pytest.approx(user.own, rel=1e-4)
    assert record["preprocessing"]["transform"] == "user_transforms:build" and record["preprocessing"]["mean"] is None


def test_a_preprocessing_field_the_dataset_does_not_use_is_refused_on_one_line(user, tmp_path):
    job = job_yaml(tmp_path, user.tree, user.checkpoint)
    result = runner.invoke(app, ["baseline", str(job), "data.crop_padding=4"])
    assert result.exit_code == 2 and result.output.strip() == (
        "error: invalid config - data.crop_padding: 4 is not used by dataset 'imagefolder': it sets the padded "
        "random crop of in-memory images, which cifar10, cifar100, digits, shapes applies; remove it")
    result = runner.invoke(app, ["baseline", str(job), "data.transform=user_transforms:build", "data.mean=[0, 0, 0]"])
    assert result.exit_code == 2 and result.output.strip() == (
        "error: invalid config - data.mean: [0.0, 0.0, 0.0] is not used: data.transform 'user_transforms:build' builds "
        "the whole preprocessing; remove one of them")
