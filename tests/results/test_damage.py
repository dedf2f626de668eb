"""A search home with a damaged, missing or planted file: one message or a rebuild, never a traceback or a pickle."""

import json
import pickle
import warnings

import pandas as pd
import pytest
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.home import STORE_NAME
from prunetune.results import load
from prunetune.results.store import journal_path
from prunetune.study import STUDY_FILE
from tests.planted import Planted
from tests.results.homes import write_stored_home

runner = CliRunner()


@pytest.fixture
def home(tmp_path):
    return tmp_path, write_stored_home(tmp_path)


def _cli(*args):
    return runner.invoke(app, list(args))


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output


@pytest.mark.parametrize("damage", [b"", b"PAR1 garbage", None], ids=["empty", "garbage", "truncated"])
def test_a_damaged_store_is_set_aside_and_rebuilt_from_the_journal_with_a_warning(home, damage):
    root, folder = home
    store = folder / STORE_NAME
    store.write_bytes(store.read_bytes()[:60] if damage is None else damage)
    with pytest.warns(UserWarning, match="results.parquet is damaged.*set it aside as results.parquet.damaged-"):
        rows = load("s", str(root))
    assert sorted(rows["step"]) == [1, 2]
    assert len(list(folder.glob("results.parquet.damaged-*"))) == 1
    assert sorted(pd.read_parquet(store)["step"]) == [1, 2]  # the rebuilt store is whole again


def test_status_and_pareto_go_on_past_a_damaged_store(home):
    root, folder = home
    (folder / STORE_NAME).write_bytes(b"garbage")
    for command in ("status", "pareto"):
        result = _cli(command, "s", "--storage", str(root))
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output and "ArrowInvalid" not in result.output
    assert "1/1 finished" in _cli("status", "s", "--storage", str(root)).output


def test_every_row_stays_in_the_journal_after_rewrites_so_a_lost_store_loses_none(home):
    root, folder = home
    (folder / STORE_NAME).unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = load("s", str(root))
    assert sorted(rows["step"]) == [1, 2]  # both rows were rewritten into the file, and are journaled still
    assert [str(w.message) for w in caught if "rebuilt" in str(w.message)] == [
        f"rebuilt {folder / STORE_NAME} from {journal_path(folder / STORE_NAME).name} and Ray's trial folders: 2 rows"]


def test_a_rebuild_with_fewer_steps_than_the_study_recorded_says_which_are_lost(home):
    root, folder = home
    (folder / STORE_NAME).unlink()
    journal = journal_path(folder / STORE_NAME)
    journal.write_text(journal.read_text().splitlines()[0] + "\n")  # step 2 lost from every copy
    with pytest.warns(UserWarning, match=r"fewer steps than the study recorded \(trial 0: 1 of 2\)"):
        load("s", str(root))


def test_a_deleted_study_is_one_message_and_no_new_study_is_made(home):
    root, folder = home
    (folder / STUDY_FILE).unlink()
    for command in ("status", "report"):
        extra = ["-o", str(root / "report")] if command == "report" else []
        _one_line_error(_cli(command, "s", "--storage", str(root), *extra), "study.db is missing")
    assert not (folder / STUDY_FILE).exists()


def test_a_garbage_study_is_one_message_naming_it(home):
    root, folder = home
    (folder / STUDY_FILE).write_bytes(b"not a database" * 100)
    _one_line_error(_cli("status", "s", "--storage", str(root)), "study.db", "cannot be opened")


@pytest.mark.parametrize("text", ["{\"job\": {", "[]", ""], ids=["truncated", "no-job", "empty"])
def test_a_damaged_search_json_is_one_message_naming_it(home, text):
    root, folder = home
    (folder / "search.json").write_text(text)
    for command in ("status", "pareto", "resume"):
        _one_line_error(_cli(command, "s", "--storage", str(root)), "search.json is damaged")


def test_a_planted_space_pickle_is_never_loaded(home):
    root, folder = home
    marker = root / "pickle-ran"
    (folder / "space.pkl").write_bytes(pickle.dumps(Planted(marker)))
    assert _cli("status", "s", "--storage", str(root)).exit_code == 0
    assert _cli("pareto", "s", "--storage", str(root)).exit_code == 0
    load("s", str(root))
    assert not marker.exists()


def test_a_home_of_an_older_prunetune_with_only_space_pkl_is_refused_without_loading_it(home):
    root, folder = home
    meta = json.loads((folder / "search.json").read_text())
    del meta["format"]
    (folder / "search.json").write_text(json.dumps(meta))
    marker = root / "pickle-ran"
    (folder / "space.pkl").write_bytes(pickle.dumps(Planted(marker)))
    _one_line_error(_cli("status", "s", "--storage", str(root)), "made by an older prunetune", "space.pkl")
    assert not marker.exists()
