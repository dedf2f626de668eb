"""Larger models stay readable: norms folded into layers, one box per block, identical blocks summed."""

import re

import pytest
import torchvision

from prunetune.pruning.drawing import describe_job, dot_source
from prunetune.pruning.drawing.compact import depth, find_blocks
from tests.pruning.drawing.conftest import dot_clusters, dot_nodes, job_of


def test_blocks_are_found_by_structure_in_resnet_mobilenet_and_efficientnet():
    resnet = find_blocks(torchvision.models.resnet50())
    assert list(resnet) == [f"layer{s}.{b}" for s, n in zip(range(1, 5), (3, 4, 6, 3)) for b in range(n)]
    assert resnet["layer3.1"] == resnet["layer3.5"] != resnet["layer3.0"]  # downsample in the first
    mobilenet = find_blocks(torchvision.models.mobilenet_v3_small())
    assert list(mobilenet) == [f"features.{i}" for i in range(1, 12)]  # not their squeeze-excitation modules
    efficientnet = find_blocks(torchvision.models.efficientnet_b0())
    # stages are not blocks, a stage of one block is drawn as that block; drop-path rates do not matter
    assert len(efficientnet) == 16 and {"features.1.0", "features.7.0", "features.6.3"} <= set(efficientnet)
    assert efficientnet["features.6.1"] == efficientnet["features.6.3"]


@pytest.fixture(scope="module")
def resnet50(tmp_path_factory):
    job = job_of(tmp_path_factory.mktemp("runs"), "resnet50", 32)
    full, _ = describe_job(job, detail="full")
    blocks, detail = describe_job(job)
    return full, blocks, detail


def test_resnet50_is_drawn_per_block_with_identical_blocks_summed(resnet50):
    full, blocks, detail = resnet50
    assert detail == "blocks" and depth(full) > 150 and depth(blocks) < 25
    assert [key for key, node in blocks.nodes.items() if node.kind == "blocks"] == [
        "layer2.2 .. layer2.3", "layer3.2 .. layer3.5"]
    summed = blocks.nodes["layer3.2 .. layer3.5"]
    assert summed.title == "4 blocks like layer3.1" and len(summed.hidden) == 8
    label = dot_source(blocks, "dependency").source
    assert "8 groups in scope: 2048 ch" in label


def test_every_group_of_resnet50_is_a_box_a_block_row_or_a_sum(resnet50):
    full, blocks, _ = resnet50
    shown = {g for node in blocks.nodes.values() for g in (*node.groups, *node.hidden)}
    shown |= {row[3] for node in blocks.nodes.values() for row in node.rows}
    assert shown == {g.index for g in full.groups}
    clusters = dot_clusters(dot_source(blocks, "combined").source)
    assert set(clusters) == {1, 4, 11, 20, 33}  # the stem and the four residual streams


def test_the_residual_add_and_the_relu_after_it_belong_to_their_block(resnet50):
    full, _, _ = resnet50
    adds = [node for node in full.nodes.values() if node.title == "Add"]
    assert len(adds) == 16 and all(node.block is not None for node in adds)
    after = {v for u, v in full.flow if full.nodes[u].title == "Add"}
    assert {full.nodes[v].block for v in after} == {node.block for node in adds}
    pool = next(node for node in full.nodes.values() if node.kind == "pool" and node.title.startswith("Mean"))
    assert pool.block is None  # the head's pooling is not the last block's


def test_layers_detail_folds_norms_and_activations_into_their_layer(tmp_path):
    job = job_of(tmp_path, "resnet18", 32)
    full, _ = describe_job(job, detail="full")
    layers, _ = describe_job(job, detail="layers")
    assert not [n for n in layers.nodes.values() if n.kind == "norm"]
    conv = layers.nodes["layer1.0.conv1"]
    assert conv.folded == ("BatchNorm2d 64", "ReLU") and conv.modules == ("layer1.0.conv1", "layer1.0.bn1")
    assert len(dot_clusters(dot_source(layers, "combined").source)) == len(full.groups)
    convs = {n.name for n in full.nodes.values() if n.kind in ("conv", "linear")}
    assert convs <= dot_nodes(dot_source(layers, "combined").source)
    assert re.search(r'"layer1\.0\.conv1" \[label="layer1\.0\.conv1\\nConv 3x3 64->64 \+ BatchNorm2d 64 \+ ReLU"',
                     dot_source(layers, "combined").source)
