"""A search driver killed mid-run, then its home read, rebuilt, moved and resumed; and a name taken twice."""

import os
import re
import signal
import subprocess
import warnings

import pytest

from prunetune.errors import UserError
from prunetune.home import STORE_NAME
from prunetune.results import load
from prunetune.search import driver, run_search
from prunetune.spaces import load_search
from tests.search.test_resume import PRUNETUNE, _finished, _wait_for_complete


def test_a_killed_search_reads_as_gone_loses_no_printed_step_and_resumes_from_a_moved_home(search_job, tmp_path):
    config = search_job("kill", trials=3)
    root, moved = tmp_path / "runs", tmp_path / "moved"
    search = subprocess.Popen([*PRUNETUNE, "search", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    try:
        _wait_for_complete(root / "kill" / "study.db", search, 1)
        os.killpg(search.pid, signal.SIGKILL)
        printed = {(int(t), int(s)) for t, s in re.findall(r"^trial (\d+) step (\d+):", search.communicate()[0], re.M)}
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
    status = subprocess.run([*PRUNETUNE, "status", "kill", "--storage", str(root)], capture_output=True, text=True)
    assert status.returncode == 0, status.stderr
    assert re.search(rf"interrupted, driver gone \(pid {search.pid} on ", status.stdout), status.stdout
    (root / "kill" / STORE_NAME).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rebuild says it rebuilt
        rows = load("kill", str(root))
    assert printed and printed <= set(zip(rows["trial"].astype(int), rows["step"].astype(int)))
    os.rename(root, moved)  # the whole storage root, baselines included, to another folder
    resumed = subprocess.run([*PRUNETUNE, "resume", "kill", "--storage", str(moved)], capture_output=True, text=True,
                             timeout=480)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "3/3 finished" in resumed.stdout
    assert sum(state in ("COMPLETE", "PRUNED") for _, state, _ in _finished(moved / "kill" / "study.db")) == 3
    assert not root.exists()  # nothing written where the search used to be


def test_a_second_driver_starting_while_the_first_trains_its_baseline_is_refused(ray_session, search_job, monkeypatch):
    job, space = load_search(search_job("race", trials=1), [])
    trained = []

    def train(*args, **kwargs):
        trained.append(job.name)
        if len(trained) == 1:  # the second driver arrives while the first trains; it must not train too
            with pytest.raises(UserError, match="already exists"):
                run_search(job, space, verbose=0)
        raise RuntimeError("baseline stopped")

    monkeypatch.setattr(driver, "prepare_baseline", train)
    with pytest.raises(RuntimeError, match="baseline stopped"):
        run_search(job, space, verbose=0)
    assert trained == ["race"]
    assert not driver.search_home(driver.absolute_root(job.storage.root), "race").exists()  # the name is free again
