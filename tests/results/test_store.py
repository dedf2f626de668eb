"""The Parquet store: atomic rewrites under a concurrent reader, pickling for Ray, and row building."""

import subprocess
import sys
import textwrap
import threading

import pandas as pd

from prunetune.config import load_config
from prunetune.pipeline.rows import ROW_COLUMNS
from prunetune.results.store import Store, config_columns, make_row


def _row(trial_id, step, accuracy=0.9):
    return {"experiment": "e", "trial": int(trial_id[1:]), "trial_id": trial_id, "step": step,
            "accuracy": accuracy, "macs": 1000 - step, "feasible": True, "checkpoint": "", "settings": "{}",
            "payload": "x" * 2000}


def test_a_concurrent_reader_never_sees_a_torn_or_shrinking_store(tmp_path):
    path = tmp_path / "results.parquet"
    store = Store(path)
    store.put(_row("t0", 0))
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from prunetune.results import load
        print("ready", flush=True)
        counts = []
        while True:
            frame = load({str(path)!r})  # raises on a torn file
            counts.append(len(frame))
            if counts[-1] >= 400:
                break
        assert counts == sorted(counts), "the store shrank"
        print(len(counts))
    """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def write():
        for index in range(1, 400):
            store.put(_row(f"t{index % 7}", index))

    assert reader.stdout.readline().strip() == "ready"  # imports done: reads now overlap the writes
    writer = threading.Thread(target=write)
    writer.start()
    writer.join()
    output, errors = reader.communicate(timeout=120)
    assert reader.returncode == 0, errors
    assert int(output) > 1  # it read while the writer was writing
    assert len(pd.read_parquet(path)) == 400
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_the_store_reloads_from_its_file_when_unpickled_and_replaces_a_reported_step(tmp_path):
    import pickle

    store = Store(tmp_path / "results.parquet")
    store.put(_row("t1", 1))
    frozen = pickle.dumps(store)  # what Ray keeps of the callback at the start of the run
    store.put(_row("t1", 2))
    store.put(_row("t1", 2, accuracy=0.5))  # a step reported again (a restored trial) replaces the row
    restored = pickle.loads(frozen)
    assert [(r["step"], r["accuracy"]) for r in restored.frame().to_dict("records")] == [(1, 0.9), (2, 0.5)]


def test_a_row_holds_the_step_the_searched_params_and_the_resolved_config():
    config = load_config(None, ["pruning.criterion=vbp", "pruning.schedule.kind=targets",
                                "pruning.schedule.targets=[0.1,0.2]"])
    result = {column: index for index, column in enumerate(ROW_COLUMNS)} | {"extra_ray_key": 1}
    row = make_row("e", 3, "abc", result, {"pruning.criterion": "vbp", "pruning.schedule.targets": [0.1, 0.2]},
                   config, "/ckpt")
    assert row["trial"] == 3 and row["checkpoint"] == "/ckpt" and "extra_ray_key" not in row
    assert all(row[column] == result[column] for column in ROW_COLUMNS)
    assert row["param.pruning.schedule.targets"] == "[0.1, 0.2]"
    assert row["config.pruning.criterion"] == "vbp"
    assert row["config.pruning.schedule.targets"] == "[0.1, 0.2]"
    assert set(config_columns(config)) <= set(row)
