"""`prunetune report` shows the search's model with its pruning groups and scope."""

import json
from xml.etree import ElementTree

from typer.testing import CliRunner

from prunetune.cli import app
from tests.results.homes import write_stored_home

runner = CliRunner()


def test_the_report_page_shows_and_links_the_scope_drawing_of_the_searchs_model(tmp_path, dot_installed):
    write_stored_home(tmp_path)
    result = runner.invoke(app, ["report", "s", "-o", str(tmp_path / "report"), "--storage", str(tmp_path)])
    assert result.exit_code == 0, result.output
    drawing = tmp_path / "report" / "graph" / "tiny_cnn_dependency.svg"
    assert f"wrote {drawing}" in result.output
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<h2>Pruning scope</h2>" in page and "<img src='graph/tiny_cnn_dependency.svg'" in page
    assert "tiny_cnn (3x32x32), scope expand:" in page
    texts = [t.text or "" for t in ElementTree.parse(drawing).getroot().iter("{http://www.w3.org/2000/svg}text")]
    assert any(t.startswith("a search of this config varies pruning.criterion") for t in texts)


def test_without_dot_the_report_page_says_how_to_draw_the_scope(tmp_path, monkeypatch):
    write_stored_home(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    result = runner.invoke(app, ["report", "s", "-o", str(tmp_path / "report"), "--storage", str(tmp_path)])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<h2>Pruning scope</h2>" in page and "dot is not installed" in page and "apt-get install graphviz" in page
    assert "-Tsvg" in page and (tmp_path / "report" / "graph" / "tiny_cnn_dependency.dot").is_file()
    assert "note: scope drawing: Graphviz's dot is not installed" in result.output
    assert not (tmp_path / "report" / "graph" / "tiny_cnn_dependency.svg").exists()


def test_a_model_that_cannot_be_built_here_leaves_the_report_whole_and_says_why(tmp_path):
    folder = write_stored_home(tmp_path)
    meta = json.loads((folder / "search.json").read_text())
    meta["job"]["data"] |= {"name": "imagefolder", "root": str(tmp_path / "images-on-another-machine")}
    (folder / "search.json").write_text(json.dumps(meta))
    result = runner.invoke(app, ["report", "s", "-o", str(tmp_path / "report"), "--storage", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "note: scope drawing: the model could not be drawn here (data.root:" in result.output
    page = (tmp_path / "report" / "index.html").read_text()
    assert "<h2>Pruning scope</h2>\n<p>The model could not be drawn here (data.root:" in page
    assert "accuracy_vs_macs.png" in page
