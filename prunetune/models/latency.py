"""Measured inference latency: of a whole model, and of each Conv/Linear inside it.

MACs miss what a pruned network actually costs on a device (memory-bound depthwise convs,
per-layer launch and framework overhead, activation functions), so latency is measured,
never modelled: the median of ``repeats`` timed forwards after warm-up, in eval mode and
inference mode, on the device given (CUDA is synchronised around each timed call).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections import defaultdict

import torch
from torch import nn

from prunetune.torch_tools import evaluation_mode, forward_hooks

WARMUP = 3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def model_latency(model: nn.Module, channels: int, image_size: int, batch_size: int = 1, repeats: int = 20,
                  device: str | torch.device = "cpu") -> float:
    """Median milliseconds of one forward of a (copied) ``model`` on ``device``."""
    device = torch.device(device)
    timed = copy.deepcopy(model).to(device).eval()
    batch = torch.randn(batch_size, channels, image_size, image_size, device=device)
    samples = []
    for index in range(WARMUP + repeats):
        _sync(device)
        started = time.perf_counter()
        timed(batch)
        _sync(device)
        if index >= WARMUP:
            samples.append((time.perf_counter() - started) * 1e3)
    return statistics.median(samples)


@torch.inference_mode()
def layer_latencies(model: nn.Module, example: torch.Tensor, repeats: int = 10) -> dict[nn.Module, float]:
    """Median milliseconds each Conv2d / Linear of ``model`` spends on ``example`` (hooks around each call)."""
    device = example.device
    samples: dict[nn.Module, list[float]] = defaultdict(list)
    starts: dict[nn.Module, float] = {}

    def before(module, inputs):
        _sync(device)
        starts[module] = time.perf_counter()

    def after(module, inputs, output):
        _sync(device)
        samples[module].append((time.perf_counter() - starts[module]) * 1e3)

    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with forward_hooks(((m, after) for m in layers), pre_hooks=((m, before) for m in layers)), evaluation_mode(model):
        for _ in range(WARMUP):
            model(example)
        samples.clear()
        for _ in range(repeats):
            model(example)
    return {module: statistics.median(times) for module, times in samples.items()}
