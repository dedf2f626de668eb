"""Where and how tensors run: device choice, precision, memory layout, seeding."""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass

import numpy as np
import torch

from prunetune.errors import UserError


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool
    compile: bool

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move a model to the device in the layout this runtime trains in."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model


def resolve_runtime(config) -> Runtime:
    """Turn a ``RuntimeConfig`` into a ``Runtime``; bf16 and NHWC only where they pay (CUDA)."""
    if config.threads:
        torch.set_num_threads(config.threads)
    name = config.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"runtime.device: {config.device!r} asked for, but no CUDA device is available; use cpu or auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"runtime.device: {config.device!r} asked for, but MPS is not available; use cpu or auto")
    on_cuda = device.type == "cuda"
    precision = config.precision if config.precision != "auto" else ("bf16" if on_cuda else "fp32")
    return Runtime(
        device=device,
        autocast_dtype=torch.bfloat16 if precision == "bf16" else None,
        channels_last=config.channels_last and on_cuda,
        compile=config.compile,
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
