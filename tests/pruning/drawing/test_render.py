"""`prunetune graph` as a user runs it: their config and checkpoint, PNG / SVG from dot, or the DOT source alone."""

import re
import textwrap
from xml.etree import ElementTree

import graphviz
import pytest
import torch
import torchvision
from PIL import Image
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.pruning.drawing import VIEWS, describe_job, dot_source
from tests.pruning.drawing.conftest import job_of

runner = CliRunner()


@pytest.fixture
def users_job(tmp_path):
    """A resnet18 the user trained elsewhere (a state_dict file) and a job config naming it."""
    checkpoint = tmp_path / "my_resnet18.pt"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), checkpoint)
    config = tmp_path / "job.yaml"
    config.write_text(textwrap.dedent(f"""
        name: mine
        model: {{name: resnet18, checkpoint: {checkpoint}, num_classes: 10}}
        data: {{name: digits, image_size: 32}}
        pruning: {{scope: expand, schedule: {{kind: linear, steps: 3, final_sparsity: 0.3}}}}
        storage: {{root: {tmp_path / 'runs'}}}
    """))
    return config, tmp_path / "drawings"


def test_graph_renders_every_view_as_png_with_the_scope_in_green(users_job, dot_installed):
    config, folder = users_job
    result = runner.invoke(app, ["graph", str(config), "-o", str(folder)])
    assert result.exit_code == 0, result.output
    assert "resnet18 (3x32x32), scope expand: 8 of 12 groups, 1920 of 2880 channels in scope" in result.output
    assert "l1 on model.checkpoint" in result.output.replace("\n", " ")
    sizes = set()
    for view in VIEWS:
        assert f"wrote {folder / f'resnet18_{view}.png'}" in result.output
        with Image.open(folder / f"resnet18_{view}.png") as image:
            sizes.add(image.size)
            pixels = image.convert("RGB").getcolors(maxcolors=1 << 20)
        green = sum(count for count, colour in pixels if colour == (0x2E, 0x7D, 0x32))
        assert green > 1000  # the borders of the eight in-scope boxes
    assert len(sizes) == 1 and min(sizes.pop()) > 600  # one layout: the same canvas in every view


def test_graph_writes_svg_whose_boxes_name_their_group_and_scope(users_job, dot_installed):
    config, folder = users_job
    result = runner.invoke(app, ["graph", str(config), "-o", str(folder), "--view", "dependency", "--format", "svg"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["resnet18_dependency.dot", "resnet18_dependency.svg"]
    svg = ElementTree.parse(folder / "resnet18_dependency.svg").getroot()
    texts = [t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert "G2 layer1.0.conv1: 64 ch, in scope" in texts and "G1 conv1: 64 ch, out of scope" in texts
    assert any(re.fullmatch(r"step 1 \(0\.10\): -\d+, step 3 \(0\.30\): -\d+ -> \d+ left", t) for t in texts)
    assert sum(1 for t in titles if t.startswith("cluster_g")) == 12


def test_every_view_places_every_node_at_the_same_position(tmp_path, dot_installed):
    graph, _ = describe_job(job_of(tmp_path, "mobilenet_v3_small", 64), detail="full")

    def positions(view: str) -> list[str]:
        plain = graphviz.pipe("dot", "plain", dot_source(graph, view).source.encode()).decode()
        return [" ".join(line.split()[:4]) for line in plain.splitlines() if line.startswith("node ")]

    computational = positions("computational")
    assert len(computational) == len(graph.nodes)
    assert positions("dependency") == computational == positions("combined")


def test_without_dot_the_sources_are_written_and_one_line_says_how_to_render(users_job, monkeypatch, tmp_path):
    config, folder = users_job
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    result = runner.invoke(app, ["graph", str(config), "-o", str(folder), "--format", "svg"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == [f"resnet18_{view}.dot" for view in sorted(VIEWS)]
    advice = [line for line in result.output.splitlines() if "dot is not installed" in line]
    assert len(advice) == 1 and "apt-get install graphviz" in advice[0]
    source = folder / "resnet18_computational.dot"
    assert f"`dot -Tsvg {source} -o {source.with_suffix('.svg')}`" in advice[0]


@pytest.mark.parametrize("option", [["--view", "flow"], ["--format", "jpg"], ["--detail", "some"]])
def test_an_unknown_option_value_is_one_line_and_exit_2(users_job, option):
    config, folder = users_job
    result = runner.invoke(app, ["graph", str(config), "-o", str(folder), *option])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    assert f"--{option[0][2:]} '{option[1]}': use " in result.output and "Traceback" not in result.output
    assert not folder.exists()
