"""The index of search homes: a name finds its search whatever --storage it was started with."""

import inspect
import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from prunetune import results, search
from prunetune.cli import app
from prunetune.home import locate, search_command
from prunetune.search_index import index_path, indexed, remember
from tests.results.homes import write_kept_step

runner = CliRunner()


@pytest.fixture
def index(tmp_path, monkeypatch):
    """A private index, and a current folder without ./runs."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "data-home" / "prunetune" / "searches.json"


def _one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    for fragment in fragments:
        assert fragment in result.output, result.output


def test_the_index_lives_under_xdg_data_home_else_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert index_path() == tmp_path / "xdg" / "prunetune" / "searches.json"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for unset in ("", "relative/path"):  # the XDG spec: empty or relative means unset
        monkeypatch.setenv("XDG_DATA_HOME", unset)
        assert index_path() == tmp_path / "home" / ".local" / "share" / "prunetune" / "searches.json"


def test_a_search_under_another_storage_is_found_by_name_from_any_folder(index, tmp_path):
    write_kept_step(tmp_path / "elsewhere")
    remember("s", str(tmp_path / "elsewhere"), tmp_path / "elsewhere" / "s")  # what the driver does
    result = runner.invoke(app, ["pareto", "s", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [(r["trial"], r["step"]) for r in json.loads(result.output)] == [(0, 1)]
    assert locate("s") == (str(tmp_path / "elsewhere"), tmp_path / "elsewhere" / "s")
    assert len(results.load("s")) == 1  # the Python API finds it the same way


def test_a_search_under_runs_of_the_current_folder_comes_before_the_index(index, tmp_path):
    write_kept_step(tmp_path / "elsewhere")
    remember("s", str(tmp_path / "elsewhere"), tmp_path / "elsewhere" / "s")
    write_kept_step(tmp_path / "cwd" / "runs")
    assert locate("s") == (str(tmp_path / "cwd" / "runs"), tmp_path / "cwd" / "runs" / "s")


def test_a_name_under_two_storage_roots_is_refused_listing_both(index, tmp_path):
    for root in ("a", "b c"):
        write_kept_step(tmp_path / root)
        remember("s", str(tmp_path / root), tmp_path / root / "s")
    _one_line_error(runner.invoke(app, ["status", "s"]), "2 searches are named 's'",
                    f"--storage {tmp_path / 'a'} (home {tmp_path / 'a' / 's'})",
                    f"--storage '{tmp_path / 'b c'}'", "choose one with --storage")
    result = runner.invoke(app, ["pareto", "s", "--storage", str(tmp_path / "b c"), "--format", "json"])
    assert result.exit_code == 0, result.output


def test_a_moved_or_deleted_home_is_named_as_gone_without_a_traceback(index, tmp_path):
    write_kept_step(tmp_path / "old")
    remember("s", str(tmp_path / "old"), tmp_path / "old" / "s")
    shutil.move(tmp_path / "old", tmp_path / "new")
    _one_line_error(runner.invoke(app, ["pareto", "s"]), f"has it at {tmp_path / 'old' / 's'}",
                    "no longer holds it (moved or deleted?)", "pass --storage")
    assert runner.invoke(app, ["pareto", "s", "--storage", str(tmp_path / "new")]).exit_code == 0
    # A second, live search of that name is the one found; the stale entry is not in the way.
    write_kept_step(tmp_path / "third")
    remember("s", str(tmp_path / "third"), tmp_path / "third" / "s")
    assert locate("s")[1] == tmp_path / "third" / "s"


def test_an_unknown_name_says_where_it_looked(index):
    _one_line_error(runner.invoke(app, ["status", "nope"]), "no search named 'nope' under",
                    f"the index of searches ({index}) lists none by that name")


def test_a_uri_storage_finds_its_home_where_the_search_started(index, tmp_path, monkeypatch):
    started = tmp_path / "project" / ".prunetune" / "searches"  # a URI root's home is local to the driver
    write_kept_step(started)
    remember("s", "s3://bucket/searches", started / "s")
    assert locate("s", "s3://bucket/searches") == ("s3://bucket/searches", started / "s")


def test_re_recording_a_home_replaces_its_entry(index, tmp_path):
    remember("s", str(tmp_path / "a"), tmp_path / "a" / "s")
    remember("s", str(tmp_path / "a"), tmp_path / "a" / "s")
    remember("t", str(tmp_path / "a"), tmp_path / "a" / "t")
    assert [entry.home for entry in indexed("s")] == [tmp_path / "a" / "s"]
    assert len(json.loads(index.read_text())["searches"]) == 2


def test_a_damaged_index_is_a_warning_and_is_set_aside_when_next_written(index, tmp_path):
    index.parent.mkdir(parents=True)
    index.write_text("{not json")
    with pytest.warns(UserWarning, match="is damaged"):
        assert indexed("s") == []
    with pytest.warns(UserWarning, match="set aside as searches.json.damaged-"):
        remember("s", str(tmp_path / "a"), tmp_path / "a" / "s")
    assert [entry.name for entry in indexed("s")] == ["s"]
    assert [p.read_text() for p in index.parent.glob("searches.json.damaged-*")] == ["{not json"]


def test_an_index_that_cannot_be_written_costs_a_warning_not_the_search(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "file"))  # its prunetune/ folder cannot be made
    with pytest.warns(UserWarning, match=f"cannot record search 's' in the index of searches .* --storage {tmp_path}"):
        remember("s", str(tmp_path), tmp_path / "s")


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from prunetune.search_index import remember
    for index in range(int(sys.argv[2])):
        name = f"w{sys.argv[1]}-{index}"
        remember(name, "/storage", Path("/storage") / name)
""")


def test_concurrent_writers_lose_no_entry(index):
    writers, each = 6, 25
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, str(number), str(each)])
                 for number in range(writers)]
    assert [process.wait(timeout=120) for process in processes] == [0] * writers
    names = {entry["name"] for entry in json.loads(index.read_text())["searches"]}
    assert names == {f"w{number}-{index}" for number in range(writers) for index in range(each)}


def test_hints_name_storage_unless_it_is_runs_here_and_quote_it(index, tmp_path):
    assert search_command("pareto", "s", str(tmp_path / "cwd" / "runs")) == "prunetune pareto s"
    assert search_command("pareto", "s", "runs") == "prunetune pareto s"
    assert search_command("resume", "s", str(tmp_path / "a b")) == f"prunetune resume s --storage '{tmp_path / 'a b'}'"


def test_the_python_api_calls_the_storage_root_storage_as_the_cli_does():
    for function in (results.load, results.export_model, search.resume_search, search.search_status):
        parameters = inspect.signature(function).parameters
        assert "storage" in parameters and "root" not in parameters, function.__name__
        assert parameters["storage"].default is None  # ./runs, then the index


def _pasted(line: str, **fill) -> list[str]:
    """A printed `prunetune ...` command as the shell would split it, placeholders filled in."""
    words = shlex.split(line)
    assert words[0] == "prunetune", line
    return [fill.get(word, word) for word in words[1:]]


def test_the_commands_a_search_prints_work_when_pasted_in_another_folder(ray_session, search_job, tmp_path,
                                                                         monkeypatch):
    config, elsewhere = search_job("far", trials=2), tmp_path / "else where"
    for folder in ("started", "later"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "started")
    started = runner.invoke(app, ["search", str(config), "--storage", str(elsewhere)])
    assert started.exit_code == 0, started.output
    hints = started.output.split("(next: ", 1)[1].rsplit(")", 1)[0].split(" | ")
    monkeypatch.chdir(tmp_path / "later")  # no ./runs here: only the printed commands and the index can find it
    recorded_in = os.environ["XDG_DATA_HOME"]
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "empty"))  # the printed commands work on their own
    shown = runner.invoke(app, _pasted(hints[0]) + ["--format", "json"])
    assert shown.exit_code == 0, shown.output
    front = json.loads(shown.output)
    report = runner.invoke(app, _pasted(hints[1], DIR=str(tmp_path / "report")))
    assert report.exit_code == 0, report.output
    exported = runner.invoke(app, _pasted(hints[2], T=str(front[0]["trial"]), S=str(front[0]["step"]),
                                          **{"model.pt": str(tmp_path / "model.pt")}))
    assert exported.exit_code == 0 and (tmp_path / "model.pt").is_file(), exported.output
    again = runner.invoke(app, ["search", str(config), "--storage", str(elsewhere)])
    assert again.exit_code == 2, again.output
    resume = again.output.split("resume it with `", 1)[1].split("`", 1)[0]
    resumed = runner.invoke(app, _pasted(resume))
    assert resumed.exit_code == 0 and "2/2 finished" in resumed.output, resumed.output
    monkeypatch.setenv("XDG_DATA_HOME", recorded_in)
    status = runner.invoke(app, ["status", "far"])  # by name alone, through the index the driver wrote
    assert status.exit_code == 0 and "2/2 finished" in status.output, status.output
