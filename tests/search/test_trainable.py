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
