"""The trainable adapter: a trial's scratch folder is its own, and those of dead workers are removed."""

import os
import subprocess
import sys

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
