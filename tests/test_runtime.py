"""The runtime's precision, memory layout and compile settings on the paths that use them.

CPU runs the parts CPU can: bf16 autocast, torch.compile, the channels_last layout across a
cut (a Runtime can ask for it on any device). Tests marked ``cuda`` check what only a GPU
shows and are skipped without one; `pytest -m cuda` (bench/gpu_check.py runs it) selects them.
"""

import dataclasses

import pytest
import torch

from prunetune.config import load_config
from prunetune.objectives import OBJECTIVES
from prunetune.pipeline.run import prepare_run, prune_step
from prunetune.runtime import resolve_runtime
from prunetune.training import make_optimizer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
ONE_STEP = ("pruning.scope=all", "pruning.schedule.targets=[0.25]", "recovery.epochs=1", "stop.min_accuracy=0.0")


def _prepared(tiny_job, tmp_path, *overrides):
    (tmp_path / "run").mkdir()
    return prepare_run(tiny_job(*ONE_STEP, *overrides), tmp_path / "run", OBJECTIVES.get("accuracy_macs"))


def _conv_output_dtypes(model, training_only=True):
    seen = set()

    def record(module, inputs, output):
        if module.training or not training_only:
            seen.add(output.dtype)

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(record)
    return seen


def _channels_last_share(model) -> float:
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return sum(w.is_contiguous(memory_format=torch.channels_last) for w in weights) / len(weights)


def test_bf16_precision_trains_a_pipeline_step_under_cpu_autocast(tiny_job, tmp_path):
    prepared = _prepared(tiny_job, tmp_path, "runtime.precision=bf16")
    assert prepared.baseline.runtime.autocast_dtype == torch.bfloat16
    seen = _conv_output_dtypes(prepared.student)
    row = prune_step(prepared, 1, 0.25)
    assert torch.bfloat16 in seen and row.epochs_run == 1 and 0.0 <= row.accuracy <= 1.0
    assert row.macs < prepared.dense.macs


def test_fp32_precision_trains_in_float32_on_cpu(tiny_job, tmp_path):
    prepared = _prepared(tiny_job, tmp_path)
    seen = _conv_output_dtypes(prepared.student)
    prune_step(prepared, 1, 0.25)
    assert seen == {torch.float32}


def test_compile_runs_a_pipeline_step_through_torch_compile(tiny_job, tmp_path, monkeypatch):
    compiled = []
    real_compile = torch.compile

    def counting_compile(model, *args, **kwargs):
        compiled.append(model)
        return real_compile(model, *args, **kwargs)

    monkeypatch.setattr(torch, "compile", counting_compile)
    prepared = _prepared(tiny_job, tmp_path, "runtime.compile=true")
    row = prune_step(prepared, 1, 0.25)
    assert compiled == [prepared.student] and row.epochs_run == 1 and 0.0 <= row.accuracy <= 1.0


def test_the_channels_last_layout_survives_a_cut(tiny_job, tmp_path):
    prepared = _prepared(tiny_job, tmp_path)
    # CPU trains NCHW by default; ask for NHWC as CUDA would, to watch what a cut does to it.
    prepared.baseline.runtime = dataclasses.replace(prepared.baseline.runtime, channels_last=True)
    prepared.baseline.runtime.prepare(prepared.student)
    assert _channels_last_share(prepared.student) == 1.0
    prune_step(prepared, 1, 0.25)
    assert _channels_last_share(prepared.student) == 1.0


@pytest.mark.cuda
@cuda
def test_cuda_runtime_defaults_to_bf16_autocast_and_channels_last():
    runtime = resolve_runtime(load_config(None, ["runtime.device=cuda"]).runtime)
    assert runtime.autocast_dtype == torch.bfloat16 and runtime.channels_last


@pytest.mark.cuda
@cuda
def test_cuda_adamw_is_the_fused_kernel():
    model = torch.nn.Linear(4, 2).cuda()
    assert make_optimizer(model, "adamw", 1e-3, 0.0, device=torch.device("cuda")).defaults["fused"] is True


@pytest.mark.cuda
@cuda
def test_cuda_pipeline_step_trains_in_bf16_channels_last_and_records_peak_memory(tiny_job, tmp_path):
    prepared = _prepared(tiny_job, tmp_path, "runtime.device=cuda")
    seen = _conv_output_dtypes(prepared.student)
    row = prune_step(prepared, 1, 0.25)
    assert torch.bfloat16 in seen and _channels_last_share(prepared.student) == 1.0
    assert row.peak_memory_mb > 0


@pytest.mark.cuda
@cuda
def test_cuda_device_resident_loader_crops_and_flips_on_the_device():
    from prunetune.data.loaders import TensorLoader
    from prunetune.data.registry import ImageTensors

    generator = torch.Generator().manual_seed(0)
    data = ImageTensors(torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8, generator=generator),
                        torch.arange(64) % 10)
    device = torch.device("cuda")

    def two_passes(**augment):
        loader = TensorLoader(data, 32, device, (0.5,) * 3, (0.25,) * 3, channels_last=True, **augment)
        return [next(iter(loader))[0] for _ in range(2)]

    plain = two_passes()
    augmented = two_passes(crop_padding=4, hflip=True)
    assert all(x.device.type == "cuda" and x.is_contiguous(memory_format=torch.channels_last) for x in augmented)
    assert torch.equal(plain[0], plain[1]) and not torch.equal(augmented[0], augmented[1])
    assert augmented[0].shape == plain[0].shape
