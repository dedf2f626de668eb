"""The Parquet store: atomic rewrites under a concurrent reader, pickling for Ray, and row building."""

import subprocess
import sys
import textwrap
import threading

import pandas as pd
import pytest

from prunetune.config import load_config
from prunetune.results import load
from prunetune.results.store import Store, config_columns, journal_path, make_row, read_journal
from prunetune.step_row import ROW_COLUMNS


def _row(trial_id, step, accuracy=0.9):
    return {"experiment": "e", "trial": int(trial_id[1:]), "trial_id": trial_id, "step": step,
            "accuracy": accuracy, "macs": 1000 - step, "feasible": True, "checkpoint": "", "settings": "{}",
            "payload": "x" * 2000}


@pytest.mark.parametrize("write_share", [1.0, 0.1], ids=["rewrite-every-row", "journal-between-rewrites"])
def test_a_concurrent_reader_never_sees_a_torn_or_shrinking_store(tmp_path, write_share):
    path = tmp_path / "results.parquet"
    store = Store(path, write_share=write_share)  # 1.0: every put rewrites the file, 400 renames under the reader
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
    store.flush()
    assert len(pd.read_parquet(path)) == 400
    assert len(journal_path(path).read_text().splitlines()) == 400  # the durable copy keeps every row
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_the_store_reloads_from_its_file_when_unpickled_and_replaces_a_reported_step(tmp_path):
    import pickle

    store = Store(tmp_path / "results.parquet")
    store.put(_row("t1", 1))
    frozen = pickle.dumps(store)  # what Ray keeps of the callback at the start of the run
    store.put(_row("t1", 2))
    store.put(_row("t1", 2, accuracy=0.5))  # a step reported again (a restored trial) replaces the row
    store.flush()  # as the search's callback does when a trial or the search ends
    restored = pickle.loads(frozen)
    assert [(r["step"], r["accuracy"]) for r in restored.frame().to_dict("records")] == [(1, 0.9), (2, 0.5)]


def test_a_store_whose_writes_take_time_writes_at_most_its_share_and_flush_writes_the_rest(tmp_path, monkeypatch):
    import prunetune.results.store as store_module

    original, writes = store_module.write_atomic, []

    def counted(path, write):
        writes.append(path)
        original(path, write)

    monkeypatch.setattr(store_module, "write_atomic", counted)
    store = Store(tmp_path / "results.parquet", write_share=0.1)
    for index in range(200):  # a burst: a write costs far more than the gap to the next row
        store.put(_row(f"t{index % 5}", index))
    assert 1 <= len(writes) < 20
    store.flush()
    assert len(pd.read_parquet(tmp_path / "results.parquet")) == 200
    count = len(writes)
    store.flush()  # nothing new since: no write
    store.write_if_due()
    assert len(writes) == count


def test_rows_a_killed_driver_had_only_journaled_are_read_and_kept(tmp_path):
    path = tmp_path / "results.parquet"
    store = Store(path, write_share=1e-6)  # after the first row, rewrites are never due
    for index in range(5):
        store.put(_row("t1", index, accuracy=0.5 + index / 10))
    with journal_path(path).open("a") as journal:
        journal.write('{"trial_id": "t1", "step": 9, "accur')  # the kill cut this line short
    assert len(pd.read_parquet(path)) == 1  # the file itself has only the first row
    assert list(load(str(path))["step"]) == [0, 1, 2, 3, 4]  # readers see the journal too
    restarted = Store(path)  # a resumed driver
    assert [(r["step"], r["accuracy"]) for r in restarted.frame().to_dict("records")] == \
        [(index, 0.5 + index / 10) for index in range(5)]
    restarted.flush()
    assert len(pd.read_parquet(path)) == 5
    restarted.put(_row("t1", 5))  # after the cut line, on a line of its own
    assert [row["step"] for row in read_journal(path)] == [0, 1, 2, 3, 4, 5]


def test_a_journal_line_that_is_json_but_not_a_row_is_skipped_with_a_warning_naming_it(tmp_path):
    path = tmp_path / "results.parquet"
    store = Store(path, write_share=1e-6)
    store.put(_row("t1", 0))  # journal line 1, and in the file
    store.put(_row("t1", 1))  # journal line 2, not in the file yet
    with journal_path(path).open("a") as journal:
        journal.write('[1, 2]\n{"trial_id": "t1"}\n{"trial_id": "t1", "step": "x"}\n')
    with pytest.warns(UserWarning) as caught:
        steps = list(load(str(path))["step"])
    assert steps == [0, 1]
    assert [str(warning.message) for warning in caught] == [
        f"{journal_path(path)}: line 3 is not a results row (a JSON list, not an object); skipped",
        f"{journal_path(path)}: line 4 is not a results row (no step); skipped",
        f"{journal_path(path)}: line 5 is not a results row (step 'x' is not a whole number); skipped",
    ]


def test_a_store_adds_only_the_rows_it_lacks_from_another_record(tmp_path):
    store = Store(tmp_path / "results.parquet")
    store.put(_row("t1", 1, accuracy=0.9))
    added = store.merge([_row("t1", 1, accuracy=0.1), _row("t1", 2, accuracy=0.8)])
    store.flush()
    assert added == 1
    assert [(r["step"], r["accuracy"]) for r in pd.read_parquet(tmp_path / "results.parquet").to_dict("records")] \
        == [(1, 0.9), (2, 0.8)]


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
