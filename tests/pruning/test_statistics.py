import torch
from torch import nn

from prunetune.config import load_config
from prunetune.data import ImageTensors, TensorLoader
from prunetune.pruning.scope import build_graph, select_scope
from prunetune.pruning.statistics import collect_stats
from prunetune.runtime import resolve_runtime

CPU = resolve_runtime(load_config(None, ["runtime.device=cpu"]).runtime)


def _loader(count=64):
    images = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8)
    return TensorLoader(ImageTensors(images, torch.randint(0, 10, (count,))), 32, torch.device("cpu"),
                        (0.5,) * 3, (0.25,) * 3)


def test_vbp_statistics_are_post_activation():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    graph = build_graph(model.eval(), torch.randn(1, 3, 8, 8))
    groups = select_scope(model, graph, "all")
    stats = collect_stats(model, groups, _loader(), CPU)
    assert (stats["0"].mean >= 0).all()  # after ReLU every mean is non-negative
