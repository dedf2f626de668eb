"""The trainable adapter: a scratch folder per trial, dead workers' removed, a private baseline cache."""

import os
import subprocess
import sys

import stat
import tempfile

import pytest

from prunetune.errors import RunError
from prunetune.search import trainable
from prunetune.search.trainable import scratch_folder


def test_scratch_folders_of_dead_workers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left_by_dead = tmp_path / f"{int(dead.stdout)}-abc"
    left_by_dead.mkdir()
    (left_by_dead / "step.pt").write_bytes(b"model")
    in_use = tmp_path / f"{os.getppid()}-def"  # a live process's (this test's parent)
    in_use.mkdir()
    with scratch_folder(tmp_path) as scratch:
        assert os.path.basename(scratch).startswith(f"{os.getpid()}-")
        assert not left_by_dead.exists() and in_use.exists()
    assert not os.path.exists(scratch)


DRIVER_FILES = {"baseline.json": b'{"epochs": 2}', "model.pt": b"the driver's weights"}


DRIVER_FOLDER = "/elsewhere/runs/baselines/tiny_cnn-digits-0123456789abcdef"  # not on this node


def test_a_tampered_file_in_the_node_cache_is_replaced_by_the_drivers_baseline(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the node's shared temp dir
    target = trainable.local_baseline(DRIVER_FILES, DRIVER_FOLDER)
    cache = tmp_path / f"prunetune-baselines-{os.getuid()}"
    assert target == cache / "tiny_cnn-digits-0123456789abcdef" and stat.S_IMODE(cache.stat().st_mode) == 0o700
    (target / "model.pt").write_bytes(b"planted by another user")
    assert trainable.local_baseline(DRIVER_FILES, DRIVER_FOLDER) == target
    assert (target / "model.pt").read_bytes() == DRIVER_FILES["model.pt"]


def test_a_trial_uses_the_drivers_folder_where_it_sees_the_same_record(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    shared = tmp_path / "runs" / "baselines" / "tiny_cnn-digits-0123456789abcdef"
    shared.mkdir(parents=True)
    for name, content in DRIVER_FILES.items():
        (shared / name).write_bytes(content)
    assert trainable.local_baseline(DRIVER_FILES, str(shared)) == shared
    (shared / "baseline.json").write_bytes(b'{"epochs": 3}')  # another baseline now lives there: not the driver's
    assert trainable.local_baseline(DRIVER_FILES, str(shared)).is_relative_to(tmp_path / "tmp")


def test_a_node_cache_others_can_write_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cache = tmp_path / f"prunetune-baselines-{os.getuid()}"
    cache.mkdir()
    cache.chmod(0o777)
    with pytest.raises(RunError, match=f"{cache}: the baseline cache is not a folder only this user can write"):
        trainable.local_baseline(DRIVER_FILES, DRIVER_FOLDER)


def test_a_search_trial_trains_in_bf16_through_torch_compile(ray_session, search_job):
    from prunetune.results import load
    from prunetune.search import run_search
    from prunetune.spaces import load_search

    # CPU autocast and inductor inside a Ray worker: the CUDA path's settings on the trial path.
    job, space = load_search(search_job("bf16c", trials=1), ["runtime.precision=bf16", "runtime.compile=true",
                                                             "pruning.schedule.targets=[0.2]"])
    outcome = run_search(job, space, verbose=0)
    rows = load(outcome.name, job.storage.root)
    assert outcome.summary.finished == 1 and outcome.summary.failed == 0
    assert len(rows) == 1 and rows["epochs_run"].iloc[0] == 1 and 0.0 <= rows["accuracy"].iloc[0] <= 1.0
