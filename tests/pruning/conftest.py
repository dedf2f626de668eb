import pytest
import torch

from prunetune.models.zoo import tiny_mobilenet
from prunetune.pruning.scope import build_graph, select_scope


@pytest.fixture
def tiny():
    """A seeded tiny_mobilenet, its graph and its expand-scope groups."""
    torch.manual_seed(0)
    model = tiny_mobilenet(num_classes=10, width=8).eval()
    example = torch.randn(1, 3, 32, 32)
    graph = build_graph(model, example)
    return model, graph, select_scope(model, graph, "expand"), example


@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory):
    """A tiny_resnet trained briefly on 16px digits (a baseline with real, non-random statistics)."""
    from prunetune.baseline import prepare_baseline
    from prunetune.config import load_config

    config = load_config(None, [
        f"storage.root={tmp_path_factory.mktemp('runs')}", "model.name=tiny_resnet", "model.kwargs.width=8",
        "data.image_size=16", "data.train_size=512", "data.calibration_size=128", "data.batch_size=64",
        "data.hflip=false", "baseline.epochs=3", "baseline.lr=0.1",
    ])
    return config, prepare_baseline(config)
