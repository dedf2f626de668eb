"""The drawing's content, checked against the scope code: nodes, one box per group, scope marks, couplings."""

import re

import pytest
import torch
from torch import nn

from prunetune.models import build_model
from prunetune.pruning.drawing import VIEWS, describe_job, dot_source
from prunetune.pruning.drawing.graph import read_graph
from prunetune.pruning.drawing.groups import scope_groups
from prunetune.pruning.scope import all_groups, build_graph, select_scope
from tests.pruning.drawing.conftest import cluster_label, dot_clusters, dot_nodes, job_of


def scope_code(job):
    """The scope code's own groups for the job: (all groups, the groups in scope)."""
    model = build_model(job.model, 2, 3).eval()
    graph = build_graph(model, torch.zeros(1, 3, job.data.image_size, job.data.image_size))
    return all_groups(model, graph), select_scope(model, graph, job.pruning.scope, job.pruning.include,
                                                  job.pruning.exclude)


MODELS = {"resnet18": (32, 12, 8, 1920), "mobilenet_v3_small": (96, 27, 10, 2440)}  # size, groups, in scope, channels


@pytest.fixture(scope="module", params=sorted(MODELS))
def drawn(request, tmp_path_factory):
    job = job_of(tmp_path_factory.mktemp("runs"), request.param, MODELS[request.param][0])
    graph, _ = describe_job(job, detail="full")
    return job, graph, dot_source(graph, "combined").source


def test_every_layer_of_every_group_is_a_node_of_the_full_drawing(drawn):
    job, _, source = drawn
    groups, _ = scope_code(job)
    members = {name for group in groups for name, _, _ in group.members}
    assert members and members <= dot_nodes(source)


def test_each_group_is_one_box_and_the_scope_code_counts_match(drawn):
    job, _, source = drawn
    groups, chosen = scope_code(job)
    _, total, in_scope, channels = MODELS[job.model.name]
    clusters = dot_clusters(source)
    assert len(clusters) == len(groups) == total
    labels = [cluster_label(body) for body in clusters.values()]
    marked = [label for label in labels if ", in scope" in label]
    assert len(marked) == len(chosen) == in_scope
    counted = sum(int(re.search(r": (\d+) ch, in scope", label)[1]) for label in marked)
    assert counted == sum(g.channels for g in chosen) == channels
    assert {re.search(r"G\d+ (\S+):", label)[1] for label in marked} == {g.name for g in chosen}
    assert len(labels) - len(marked) == sum(", out of scope" in label for label in labels)


def test_in_scope_boxes_are_green_and_the_others_grey(drawn):
    _, _, source = drawn
    for body in dot_clusters(source).values():
        colour = re.search(r'\bcolor="(#\w+)"', body)[1]
        assert colour == ("#2E7D32" if ", in scope" in cluster_label(body) else "#9E9E9E")


def test_the_mobilenet_v3_small_expand_scope_is_ten_groups_of_2440_channels_in_the_title(tmp_path):
    graph, detail = describe_job(job_of(tmp_path, "mobilenet_v3_small", 96))
    assert detail == "blocks"  # auto: too deep for one box per op
    assert "10 of 27 groups, 2440 of 4872 channels in scope" in graph.title


def test_residual_adds_and_depthwise_convs_are_forced_shape_matches_and_conv_to_bn_is_direct(tmp_path):
    resnet, _ = describe_job(job_of(tmp_path, "resnet18", 32), detail="full")
    into_adds = {kind for (u, v), kind in resnet.coupling.items() if resnet.nodes[v].title == "Add"}
    assert into_adds == {"shape"}
    assert resnet.coupling[("layer1.0.conv1", "layer1.0.bn1")] == "direct"
    mobilenet, _ = describe_job(job_of(tmp_path, "mobilenet_v3_small", 96), detail="full")
    into_depthwise = {kind for (u, v), kind in mobilenet.coupling.items() if mobilenet.nodes[v].kind == "depthwise"}
    assert into_depthwise == {"shape"}
    assert mobilenet.coupling[("features.2.block.0.0", "features.2.block.0.1")] == "direct"


def test_patterns_mark_excluded_and_included_groups_by_their_pattern(tmp_path):
    job = job_of(tmp_path, "resnet18", 32, "pruning.exclude=[layer1.*]", "pruning.include=[layer2.0.conv2]")
    graph, _ = describe_job(job, detail="full")
    status = {g.name: (g.status, g.pattern) for g in graph.groups}
    assert status["layer1.0.conv1"] == status["layer1.1.conv1"] == ("excluded", "layer1.*")
    assert status["layer2.0.conv2"] == ("included", "layer2.0.conv2")
    labels = {cluster_label(body) for body in dot_clusters(dot_source(graph, "dependency").source).values()}
    assert any("excluded by pattern 'layer1.*'" in label for label in labels)
    assert any("in scope (include 'layer2.0.conv2')" in label for label in labels)


def test_schedule_counts_are_the_selections_first_and_last_step(tmp_path):
    job = job_of(tmp_path, "mobilenet_v3_small", 96, "pruning.schedule.kind=linear", "pruning.schedule.steps=4",
                 "pruning.schedule.final_sparsity=0.4")
    graph, _ = describe_job(job, detail="full")
    chosen = [g for g in graph.groups if g.selected]
    first, last, left = (sum(values) for values in zip(*(g.removal for g in chosen)))
    assert graph.targets == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert first == round(0.1 * 2440)  # the selection hits the global target exactly
    assert left == 2440 - round(0.4 * 2440)
    assert 0 < last < first + 100
    assert all(g.removal is None for g in graph.groups if not g.selected)


class _TwoBranches(nn.Module):
    """Two convs concatenated: the concat carries the channels of both groups."""

    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)
        self.mix = nn.Conv2d(12, 6, 1)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        x = self.mix(torch.cat([self.left(x), self.right(x)], 1))
        return self.head(x.mean((2, 3)))


def test_a_node_carrying_several_groups_is_outside_the_boxes_with_a_double_border():
    model = _TwoBranches().eval()
    example = torch.zeros(1, 3, 8, 8)
    graph = build_graph(model, example)
    drawn = read_graph(model, graph, scope_groups(model, graph, "all"), tuple(example.shape), "two branches")
    concat = next(node for node in drawn.nodes.values() if node.title == "Concat")
    assert len(concat.groups) == 2
    source = dot_source(drawn, "combined").source
    statement = re.search(rf'^\t"{re.escape(concat.key)}" \[(.*)$', source, re.M)[1]  # top level: no box holds it
    assert "peripheries=2" in statement and "channels of G1 + G2" in statement


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_shows_its_edges_and_hides_the_others(drawn, view):
    _, graph, _ = drawn
    source = dot_source(graph, view).source
    flow = re.findall(r"^\t.* -> .* \[arrowsize=0\.6 color=\"#606060\"\]$", source, re.M)
    coupling = re.findall(r"^\t.* -> .* \[color=\"#(?:2E7D32|D32F2F)\" constraint=false dir=none", source, re.M)
    assert (len(flow) == len(graph.flow)) == (view != "dependency")
    assert (len(coupling) == len(graph.coupling)) == (view != "computational")
