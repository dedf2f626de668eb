"""Prune every torchvision classifier, or a list of timm families, once per scope and criterion.

Each case builds the model with random weights at a small input size, prunes it one-shot to
a channel sparsity and checks that it still runs in eval and in train mode, gives (1, classes)
logits (and auxiliary logits of that shape in training), costs fewer MACs, and survives
save_pruned / load_pruned with identical outputs. A model prunetune declines before any work
(a one-line ModelError / UserError) is "refused"; any other failure is recorded with its
reason, and the sweep goes on. Each zoo writes its own section of the report (zoo_report.py).

    .venv/bin/python scripts/zoo_sweep.py [--zoo torchvision|timm] [--models a,b] [--size 64]
                                          [--sparsity 0.3] [--out docs/zoo-sweep.md]
                                          [--jsonl FILE --resume] [--update]

Not a CI test (the whole zoo takes long on 2 cores): tests/pruning/test_zoo_handful.py runs
``run_case`` on a handful of models.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import datetime
import gc
import json
import os
import shlex
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch
import torchvision
from torch import nn

from prunetune.config import MacAwareConfig, ModelConfig, PruningConfig, RuntimeConfig
from prunetune.errors import ModelError, UserError
from prunetune.models import build_model, measure
from prunetune.pruning import Pruner, collect_stats
from prunetune.pruning.persist import load_pruned, save_pruned
from prunetune.pruning.scope import build_graph, select_scope
from prunetune.runtime import resolve_runtime
from prunetune.training import split_outputs

sys.path.insert(0, str(Path(__file__).resolve().parent))  # zoo_report, also when this file is loaded by path
from zoo_report import (CRITERIA, FAIL, NO_CHANNELS, OK, REFUSED, SCOPES, Case, Outcome,  # noqa: E402
                        read_section, render_section, revision, versions, write_section)

# The timm families the sweep covers (docs/zoo-sweep.md): ViTs, a hybrid, a ghost-module net,
# attention families prunetune refuses in part, re-parameterisable and plain CNNs.
TIMM_MODELS = tuple(f"timm:{name}" for name in (
    "vit_tiny_patch16_224", "deit_tiny_patch16_224", "mobilevit_xxs", "ghostnet_100", "efficientformer_l1",
    "levit_128s", "repvgg_a0", "resnet18", "efficientnet_b0", "mobilenetv3_small_100", "convnext_atto",
    "regnety_002", "edgenext_xx_small",
))
TRAIN_BATCH = 2  # a train-mode forward: BatchNorm needs more than one value per channel
# Tried in order when a model rejects the requested size (MaxViT's window partition needs
# 224, Inception v3's stride-2 stack more than 64 and its auxiliary head in training 299).
LARGER_SIZES = (96, 128, 160, 224, 299)
# beta < 0 puts costly channels first; the config default beta 0 would be plain l1.
MAC_AWARE = MacAwareConfig(base="l1", beta=-1.0)
CALIBRATION_BATCHES, CALIBRATION_BATCH_SIZE = 2, 4
CPU = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32"))


def build(name: str, num_classes: int, image_size: int, seed: int = 0) -> tuple[nn.Module, int]:
    """The model in eval mode with seeded random weights, and the input size it runs at."""
    torch.manual_seed(seed)
    kwargs = {}
    if name.startswith("vit_"):
        # torchvision's ViT fixes its input size when built (positional embedding length);
        # its builders take image_size=, which must be a multiple of the patch size.
        patch = int(name.rsplit("_", 1)[1])
        image_size = -(-image_size // patch) * patch
        kwargs["image_size"] = image_size
    if name.startswith("timm:"):
        return _build_timm(name, num_classes, image_size, seed)
    model = build_model(ModelConfig(name=name, kwargs=kwargs), num_classes=num_classes).eval()
    return model, fitting_size(model, image_size)


def _build_timm(name: str, num_classes: int, image_size: int, seed: int) -> tuple[nn.Module, int]:
    """timm ViTs, LeViT, EfficientFormer fix their token grid when built (``img_size=``):
    build for each size tried until one runs; models without ``img_size`` are built once."""
    first_error = None
    for size in (image_size, *(s for s in LARGER_SIZES if s > image_size)):
        torch.manual_seed(seed)
        try:
            model = build_model(ModelConfig(name=name, kwargs={"img_size": size}), num_classes=num_classes).eval()
        except ModelError as error:
            if "img_size" not in str(error):
                raise
            model = build_model(ModelConfig(name=name), num_classes=num_classes).eval()
            return model, fitting_size(model, image_size)
        try:
            _run_at(model, size)
            return model, size
        except Exception as error:  # any model-specific shape complaint means "try larger"
            first_error = first_error or error
    raise first_error


@torch.no_grad()
def fitting_size(model: nn.Module, requested: int) -> int:
    """``requested`` if the model runs at it, else the first of LARGER_SIZES that works."""
    first_error = None
    for size in (requested, *(s for s in LARGER_SIZES if s > requested)):
        try:
            _run_at(model, size)
            return size
        except Exception as error:  # any model-specific shape complaint means "try larger"
            first_error = first_error or error
    raise first_error


@torch.no_grad()
def _run_at(model: nn.Module, size: int) -> None:
    """An eval and a train-mode forward at ``size`` (Inception v3's auxiliary head needs more
    than its main path); BatchNorm momentum 0 keeps the running statistics as they are."""
    model(torch.randn(1, 3, size, size))
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.momentum = 0.0
    try:
        model.train()(torch.randn(TRAIN_BATCH, 3, size, size))
    finally:
        model.eval()
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum


def run_case(model: nn.Module, case: Case, workdir: Path) -> Outcome:
    """Prune ``model`` (in place) as ``case`` says and check the result. Never raises."""
    started = time.perf_counter()
    stage, values = "measure", {}

    def outcome(status: str, reason: str = "") -> Outcome:
        return Outcome(case, status, reason, seconds=round(time.perf_counter() - started, 2), **values)

    try:
        torch.manual_seed(case.seed)
        model.eval()
        example = torch.randn(1, 3, case.image_size, case.image_size)
        before = measure(model, 3, case.image_size)
        stage = "scope"
        config = PruningConfig(scope=case.scope, criterion=case.criterion, mac_aware=MAC_AWARE)
        try:
            pruner = Pruner(model, example, config, case.seed)
        except UserError as error:  # declined before any work: an empty scope, or a one-line refusal
            return outcome(NO_CHANNELS if _empty_scope(model, example, case.scope) else REFUSED, str(error))
        values["channels"] = pruner.original_channels
        stats = None
        if pruner.criterion.needs_stats:
            stage = "statistics"
            stats = collect_stats(model, pruner.groups(), _random_batches(case), CPU)
        stage = "prune"
        step = pruner.step(case.sparsity, stats=stats)
        values["sparsity"] = pruner.sparsity()
        stage = "forward"
        with torch.no_grad():
            output = model(example)
        after = measure(model, 3, case.image_size)
        values["mac_ratio"] = after.macs / before.macs
        values["params_ratio"] = after.params / before.params
        problem = _check(output, case, step.sparsity, values["sparsity"], before.macs, after.macs)
        if problem:
            return outcome(FAIL, problem)
        stage = "save/load"
        problem = _round_trip(model, example, output, workdir / f"{case.model.replace(':', '_')}-{case.scope}-{case.criterion}.pt")
        if problem:
            return outcome(FAIL, problem)
        stage = "train forward"
        problem = _train_forward(model, case)
        return outcome(FAIL, problem) if problem else outcome(OK)
    except Exception as error:  # the sweep records every failure instead of stopping
        return outcome(FAIL, f"{stage}: {describe(error)}")


def _empty_scope(model: nn.Module, example: torch.Tensor, scope: str) -> bool:
    try:
        return not select_scope(model, build_graph(model, example), scope)
    except UserError:
        return False


def _train_forward(model: nn.Module, case: Case) -> str:
    """The first failed check of a train-mode forward (last: it moves BN statistics), or ""."""
    model.train()
    try:
        with torch.no_grad():
            output = model(torch.randn(TRAIN_BATCH, 3, case.image_size, case.image_size))
    finally:
        model.eval()
    logits, auxiliary = split_outputs(output)
    shapes = [tuple(t.shape) for t in (logits, *auxiliary)]
    if any(shape != (TRAIN_BATCH, case.num_classes) for shape in shapes):
        return f"check: train-mode outputs {shapes}, expected ({TRAIN_BATCH}, {case.num_classes}) each"
    return ""


def describe(error: BaseException) -> str:
    """Type, first line of the message, and the innermost frame: names the library at fault."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0][:160] if lines else ''}".rstrip(": ")
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return text
    where = Path(frames[-1].filename)
    short = "/".join(where.parts[-3:]) if "site-packages" in where.parts else where.name
    return f"{text} (at {short}:{frames[-1].lineno} in {frames[-1].name})"


def _random_batches(case: Case) -> list[tuple[torch.Tensor, torch.Tensor]]:
    size = (CALIBRATION_BATCH_SIZE, 3, case.image_size, case.image_size)
    return [(torch.randn(size), torch.randint(0, case.num_classes, (CALIBRATION_BATCH_SIZE,)))
            for _ in range(CALIBRATION_BATCHES)]


def _check(output, case: Case, selected: float, achieved: float, macs_before: int, macs_after: int) -> str:
    """The first failed check after the cut, or "" if all hold."""
    if not isinstance(output, torch.Tensor) or output.shape != (1, case.num_classes):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        return f"check: output {shape}, expected (1, {case.num_classes})"
    if not torch.isfinite(output).all():
        return "check: output has NaN or inf"
    if abs(achieved - selected) > 1e-9:
        return f"check: selection chose sparsity {selected:.4f} but the scope shows {achieved:.4f} after the cut"
    if macs_after >= macs_before:
        return f"check: MACs not reduced ({macs_before} -> {macs_after})"
    return ""


def _round_trip(model: nn.Module, example: torch.Tensor, output: torch.Tensor, path: Path) -> str:
    try:
        save_pruned(model, path, {"image_size": example.shape[-1]})
        loaded = load_pruned(path).model
        with torch.no_grad():
            again = loaded(example)
    finally:
        path.unlink(missing_ok=True)
    if not torch.equal(again, output):
        return f"check: loaded model's output differs (max |diff| {(again - output).abs().max().item():.3g})"
    return ""


@contextlib.contextmanager
def resource_guard(seconds: int | None, memory_gib: float | None):
    """Raise TimeoutError / MemoryError in the main thread past ``seconds`` or ``memory_gib`` resident.

    Polled every second by SIGALRM, so it fires between Python operations. The memory cap is
    there because Torch-Pruning's grouping grows by tens of MB/s for many minutes on some
    models, and the kernel's OOM killer would end the whole sweep without a word. Once fired,
    the next poll waits a minute: polling on would raise again while the case reports the
    first error, or as the block exits.
    """
    deadline = time.monotonic() + seconds if seconds else None

    def check(signum, frame):
        resident = _resident_gib()
        if deadline is not None and time.monotonic() > deadline:
            error = TimeoutError(f"case ran over {seconds} s")
        elif memory_gib and resident > memory_gib:
            error = MemoryError(f"process memory reached {resident:.1f} GiB (cap {memory_gib} GiB)")
        else:
            return
        signal.setitimer(signal.ITIMER_REAL, 60.0, 1.0)
        raise error

    previous = signal.signal(signal.SIGALRM, check)
    signal.setitimer(signal.ITIMER_REAL, 1.0, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _resident_gib() -> float:
    with open("/proc/self/statm") as statm:  # Linux; pages: size resident shared ...
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def sweep_model(name: str, args: argparse.Namespace, workdir: Path, done: set) -> list[Outcome]:
    """Every scope x criterion case of one model; the model is built once and copied per case."""
    cases = [(scope, criterion) for scope in SCOPES for criterion in CRITERIA
             if (name, scope, criterion) not in done]
    if not cases:
        return []
    try:
        with resource_guard(args.case_timeout, args.memory_cap):
            pristine, size = build(name, args.num_classes, args.size)
    except Exception as error:
        return [Outcome(Case(name, s, c, args.size, args.sparsity, args.num_classes), FAIL, f"build: {describe(error)}")
                for s, c in cases]
    outcomes, shared_failure = [], None
    for scope, criterion in cases:
        case = Case(name, scope, criterion, size, args.sparsity, args.num_classes)
        if shared_failure:
            outcomes.append(Outcome(case, FAIL, shared_failure))
            continue
        try:
            with resource_guard(args.case_timeout, args.memory_cap):
                outcome = run_case(copy.deepcopy(pristine), case, workdir)
        except (TimeoutError, MemoryError) as error:  # fired outside run_case's own guard
            outcome = Outcome(case, FAIL, f"guard: {describe(error)}")
        outcomes.append(outcome)
        if outcome.reason.startswith(("scope: TimeoutError", "scope: MemoryError")):
            # Grouping the graph is the same work for every scope and criterion: don't redo it.
            shared_failure = f"{outcome.reason} (not rerun: same graph step as {scope}/{criterion})"
        gc.collect()
    return outcomes


ZOO_TITLES = {"torchvision": "torchvision classifiers", "timm": "timm families"}


def write_report(outcomes: list[Outcome], path: Path, command: str, args: argparse.Namespace) -> None:
    """Rewrite this zoo's section of ``path`` (zoo_report.py) for ``outcomes``."""
    hours = sum(o.seconds for o in outcomes) / 3600
    header = [
        f"Produced by `{command}` on {datetime.date.today().isoformat()} "
        f"at revision {revision()} ({versions()}; CPU, fp32; cases took {hours:.2f} h in all, builds not counted)"
        + (f", resumed from {args.jsonl} (outcomes of earlier runs of this script)" if args.resume else "")
        + (", keeping the rows of models not rerun from the previous report (--update)" if args.update else "")
        + "." + (f" {args.note}" if args.note else ""),
        "",
        f"Each case builds the model with random weights and {args.num_classes} classes, prunes it one-shot to "
        f"channel sparsity {args.sparsity} of its scope, and checks: forward runs, output shape "
        f"(1, {args.num_classes}) and finite, the scope lost exactly the selected channels, MACs strictly "
        "reduced, `save_pruned` / `load_pruned` gives bit-identical outputs, and a train-mode forward of "
        f"{TRAIN_BATCH} images gives ({TRAIN_BATCH}, {args.num_classes}) logits (auxiliary logits included). "
        f"vbp statistics come from {CALIBRATION_BATCHES} random batches of {CALIBRATION_BATCH_SIZE}; mac_aware "
        f"wraps l1 with beta {MAC_AWARE.beta} (costly channels first). Input size {args.size} unless the model "
        f"rejects it (then the first of {', '.join(map(str, LARGER_SIZES))} that runs; ViTs are built for the "
        "size rounded up to their patch, timm models taking `img_size` for the size tried). MACs / params columns "
        "are after / before. *refused*: prunetune declined the case before any work with the one-line message "
        "shown. A case is stopped past a time or resident-memory limit (`--case-timeout`, `--memory-cap`; the "
        "reason names the limit); when the stop falls in the graph step, which every scope and criterion "
        "shares, the model's other cases are not rerun.",
    ]
    write_section(path, args.zoo, render_section(ZOO_TITLES[args.zoo], header, outcomes))


def _read_jsonl(path: Path) -> list[Outcome]:
    outcomes = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        outcomes.append(Outcome(Case(**row.pop("case")), **row))
    return outcomes


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", choices=sorted(ZOO_TITLES), default="torchvision",
                        help="which models (default list) and which report section")
    parser.add_argument("--models", help="comma-separated names (default: every torchvision classifier, or TIMM_MODELS)")
    parser.add_argument("--size", type=int, default=64, help="requested input size")
    parser.add_argument("--sparsity", type=float, default=0.3, help="one-shot channel sparsity of the scope")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--case-timeout", type=int, default=600, help="seconds per case; 0: no limit")
    parser.add_argument("--memory-cap", type=float, default=16.0, help="GiB resident before a case is stopped; 0: none")
    parser.add_argument("--out", type=Path, default=Path("docs/zoo-sweep.md"))
    parser.add_argument("--jsonl", type=Path, help="append each outcome here as it finishes")
    parser.add_argument("--resume", action="store_true", help="skip cases already in --jsonl")
    parser.add_argument("--shard", default="1/1", help="K/N: run every N-th model from the K-th (parallel runs)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--note", help="a sentence for the report's header (how the runs were split, say)")
    parser.add_argument("--update", action="store_true",
                        help="keep the report section's rows of the models not run now (rerun a few families)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # TP warns about every transformer's unwrapped parameters once per graph: noise here.
    warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
    if args.resume and not args.jsonl:
        print("--resume needs --jsonl FILE (the outcomes to resume from)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    default = TIMM_MODELS if args.zoo == "timm" else torchvision.models.list_models(module=torchvision.models)
    names = args.models.split(",") if args.models else list(default)
    shard, shards = (int(part) for part in args.shard.split("/"))
    names = names[shard - 1 :: shards]
    outcomes = _read_jsonl(args.jsonl) if args.resume and args.jsonl.is_file() else []
    if args.update:
        rerun = set(names) | {o.case.model for o in outcomes}
        outcomes += [o for o in read_section(args.out, args.zoo) if o.case.model not in rerun]
    done = {(o.case.model, o.case.scope, o.case.criterion) for o in outcomes}
    shown = list(sys.argv[1:] if argv is None else argv)
    if args.note:  # the header prints the note as a sentence of its own
        del shown[shown.index("--note") : shown.index("--note") + 2]
    command = "python scripts/zoo_sweep.py " + shlex.join(shown)
    with tempfile.TemporaryDirectory(prefix="zoo-sweep-") as workdir:
        for name in names:
            new = sweep_model(name, args, Path(workdir), done)
            for o in new:
                print(f"{o.case.model:24} {o.case.scope:6} {o.case.criterion:9} {o.status:4} {o.seconds:7.1f}s {o.reason}",
                      flush=True)
                if args.jsonl:
                    with args.jsonl.open("a") as file:
                        file.write(json.dumps(dataclasses.asdict(o)) + "\n")
            outcomes += new
            write_report(outcomes, args.out, command.strip(), args)
    return 0  # failed cases are results, not a failed run


if __name__ == "__main__":
    sys.exit(main())
