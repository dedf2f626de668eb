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
