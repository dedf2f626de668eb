"""Searches driven through the CLI in subprocesses: interrupted, killed, resumed, on a cluster."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prunetune.results import load
from tests.ray_records import ray_steps

PRUNETUNE = [sys.executable, "-m", "prunetune.cli"]


def _finished(db: Path) -> list[tuple]:
    """(number, state, ray id) of the study's trials, read straight from its SQLite file."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as connection:
        try:
            return connection.execute(
                "SELECT t.number, t.state, a.value_json FROM trials t LEFT JOIN trial_user_attributes a "
                "ON a.trial_id = t.trial_id AND a.key = 'ray_trial_id' ORDER BY t.number").fetchall()
        except sqlite3.OperationalError:
            return []


def _wait_for_complete(db: Path, process, count: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(state in ("COMPLETE", "PRUNED") for _, state, _ in _finished(db)) >= count:
            return
        assert process.poll() is None, process.communicate()[0][-3000:]
        time.sleep(1)
    pytest.fail("no trial finished in time")


def _interrupt_and_resume(config, name, root, how, *overrides):
    """Start ``prunetune search``, send ``how`` once a trial has finished, then ``prunetune resume``.

    Returns the trial states finished before the signal and the finished resume.
    """
    db = root / name / "study.db"
    search = subprocess.Popen([*PRUNETUNE, "search", str(config), *overrides], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        _wait_for_complete(db, search, 1)
        before = {number: state for number, state, _ in _finished(db) if state in ("COMPLETE", "PRUNED")}
        os.killpg(search.pid, how) if how == signal.SIGKILL else search.send_signal(how)
        search.communicate(timeout=120)
    finally:
        if search.poll() is None:
            os.killpg(search.pid, signal.SIGKILL)
    resumed = subprocess.run([*PRUNETUNE, "resume", name, "--storage", str(root)], capture_output=True, text=True,
                             timeout=480)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return before, resumed


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_an_interrupted_search_resumes_to_exactly_the_requested_trials(search_job, tmp_path, how):
    config = search_job("res", trials=4)
    root = tmp_path / "runs"
    db = root / "res" / "study.db"
    before, resumed = _interrupt_and_resume(config, "res", root, how)
    trials = _finished(db)
    finished = [(n, ray_id) for n, state, ray_id in trials if state in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4
    assert len({ray_id for _, ray_id in finished}) == 4  # no trial counted twice
    assert all(dict((n, s) for n, s, _ in trials)[n] == state for n, state in before.items())  # earlier results kept
    assert not [n for n, state, _ in trials if state == "RUNNING"]
    assert "4/4 finished" in resumed.stdout
    assert "Checkpoint successfully created" not in resumed.stdout + resumed.stderr  # Ray's per-checkpoint INFO line
    rows = load("res", str(root))
    # Nothing Ray recorded is missing (after a hard kill Ray's copy can be the older one).
    assert ray_steps(root / "res") <= set(zip(rows["trial_id"], rows["step"].astype(int)))
    # Ray's folders carry the study's numbers, for trials of both drivers.
    numbers = {json.loads(ray_id): number for number, _, ray_id in reversed(trials) if ray_id}
    # Read from the folder names: after a SIGKILL the first driver's trials can keep an empty
    # result.json (Ray had not flushed it), so Ray's own record cannot name them.
    folders = {folder.name.rsplit("_", 1)[1]: folder.name for folder in (root / "res").glob("trial_*") if folder.is_dir()}
    assert len(folders) >= 4 and all(folder == f"trial_{numbers.get(ray_id)}_{ray_id}" for ray_id, folder in folders.items())


def test_a_killed_search_resumes_its_enqueued_settings_without_repeating_them(search_job, tmp_path):
    import optuna

    config = search_job("queued", trials=3)
    root = tmp_path / "runs"
    db = root / "queued" / "study.db"
    _, resumed = _interrupt_and_resume(config, "queued", root, signal.SIGKILL, "search.max_concurrent_trials=1",
                                       "search.enqueue=[{pruning.criterion: bn_gamma}, {pruning.criterion: l1}, "
                                       "{pruning.criterion: bn_gamma}]")
    assert "3/3 finished" in resumed.stdout
    study = optuna.load_study(study_name="queued", storage=f"sqlite:///{db}")
    finished = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    # Each enqueued setting ran to the end exactly once, with its setting, and nothing else is left queued.
    assert sorted(t.user_attrs["enqueued"] for t in finished) == [0, 1, 2]
    assert [t.params["pruning.criterion"] for t in sorted(finished, key=lambda t: t.user_attrs["enqueued"])] == [
        "bn_gamma", "l1", "bn_gamma"]
    assert not [t for t in study.get_trials() if t.state.name in ("WAITING", "RUNNING")]


def _stop_cluster(temp_dir: str) -> None:
    """Kill only this cluster's processes: `ray stop` would also kill the test session's Ray."""
    subprocess.run(["pkill", "-9", "-f", temp_dir], check=False)


def test_a_search_runs_on_a_two_node_ray_cluster_started_with_rays_cli(search_job, tmp_path):
    ray_cli = str(Path(sys.executable).parent / "ray")
    port = "6391"
    # Ray 2.60's `ray start` turns on token authentication, and a second node started
    # without the head's token is refused; a loopback test cluster runs without it.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    temp_dir = f"/tmp/rc{os.getpid()}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    try:
        subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false",
                        f"--temp-dir={temp_dir}", "--object-store-memory=150000000", *common],
                       check=True, capture_output=True, env=env)
        subprocess.run([ray_cli, "start", f"--address=127.0.0.1:{port}", "--object-store-memory=150000000", *common],
                       check=True, capture_output=True, env=env)
        config = search_job("cluster", trials=2)
        done = subprocess.run([*PRUNETUNE, "search", str(config), "--address", f"127.0.0.1:{port}"],
                              capture_output=True, text=True, timeout=480, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "2/2 finished" in done.stdout
        assert "[baseline | epoch 2/2]" in done.stdout  # the driver trains the baseline first, with progress
        rows = load("cluster", str(tmp_path / "runs"))
        assert rows["trial"].nunique() == 2 and (rows["checkpoint"] != "").any()
        # Curves of trials run on either node, under the home, and one TensorBoard hint: prunetune's, not Ray's.
        curves = (tmp_path / "runs" / "cluster" / "tensorboard").resolve()
        assert done.stdout.count("tensorboard --logdir") == 1 and f"tensorboard --logdir {curves}" in done.stdout
        assert sorted(path.name for path in curves.iterdir()) == [f"trial_{n}" for n in sorted(rows["trial"].unique())]
    finally:
        _stop_cluster(temp_dir)
