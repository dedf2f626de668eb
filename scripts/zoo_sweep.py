"""Prune every torchvision classification builder once per scope and criterion; write a table.

Each case builds the model with random weights at a small input size, prunes it one-shot to
a channel sparsity and checks that it still runs, gives (1, classes) logits, costs fewer
MACs, and survives save_pruned / load_pruned with identical outputs. A failing case is
recorded with its reason and the sweep goes on.

    .venv/bin/python scripts/zoo_sweep.py [--models a,b] [--size 64] [--sparsity 0.3]
                                          [--out docs/zoo-sweep.md] [--jsonl FILE --resume]

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
import importlib.metadata
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from prunetune.config import MacAwareConfig, ModelConfig, PruningConfig, RuntimeConfig
from prunetune.errors import UserError
from prunetune.models import build_model, measure
from prunetune.pruning import Pruner, collect_stats
from prunetune.pruning.persist import load_pruned, save_pruned
from prunetune.pruning.scope import build_graph, select_scope
from prunetune.runtime import resolve_runtime

SCOPES = ("all", "expand")
CRITERIA = ("l1", "vbp", "mac_aware")
OK, NO_CHANNELS, FAIL = "ok", "no channels in scope", "fail"
# Tried in order when a model rejects the requested size (MaxViT's window partition needs
# 224, Inception v3's stride-2 stack needs more than 64).
LARGER_SIZES = (96, 128, 160, 224)
# beta < 0 puts costly channels first; the config default beta 0 would be plain l1.
MAC_AWARE = MacAwareConfig(base="l1", beta=-1.0)
CALIBRATION_BATCHES, CALIBRATION_BATCH_SIZE = 2, 4
CPU = resolve_runtime(RuntimeConfig(device="cpu", precision="fp32"))


@dataclass(frozen=True)
class Case:
    model: str
    scope: str
    criterion: str
    image_size: int
    sparsity: float = 0.3
    num_classes: int = 10
    seed: int = 0


@dataclass(frozen=True)
class Outcome:
    case: Case
    status: str
    reason: str = ""
    channels: int = 0
    sparsity: float | None = None
    mac_ratio: float | None = None
    params_ratio: float | None = None
    seconds: float = 0.0


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
    model = build_model(ModelConfig(name=name, kwargs=kwargs), num_classes=num_classes).eval()
    return model, fitting_size(model, image_size)


@torch.no_grad()
def fitting_size(model: nn.Module, requested: int) -> int:
    """``requested`` if the model runs at it, else the first of LARGER_SIZES that works."""
    first_error = None
    for size in (requested, *(s for s in LARGER_SIZES if s > requested)):
        try:
            model(torch.randn(1, 3, size, size))
            return size
        except Exception as error:  # any model-specific shape complaint means "try larger"
            first_error = first_error or error
    raise first_error


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
        except UserError:  # the Pruner refuses an empty scope; anything else is a failure
            if not select_scope(model, build_graph(model, example), case.scope):
                return outcome(NO_CHANNELS)
            raise
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
        return outcome(FAIL, problem) if problem else outcome(OK)
    except Exception as error:  # the sweep records every failure instead of stopping
        return outcome(FAIL, f"{stage}: {describe(error)}")


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


def versions() -> str:
    return ", ".join(f"{package} {importlib.metadata.version(package)}"
                     for package in ("torch", "torchvision", "torch-pruning", "timm"))


def write_report(outcomes: list[Outcome], path: Path, command: str, args: argparse.Namespace) -> None:
    outcomes = sorted(outcomes, key=lambda o: (o.case.model, SCOPES.index(o.case.scope), CRITERIA.index(o.case.criterion)))
    counts = Counter(o.status for o in outcomes)
    hours = sum(o.seconds for o in outcomes) / 3600
    lines = [
        "# Zoo sweep: one-shot pruning of every torchvision classifier",
        "",
        f"Produced by `{command}` on {datetime.date.today().isoformat()} "
        f"at revision {_revision()} ({versions()}; CPU, fp32; cases took {hours:.2f} h in all, builds not counted)"
        + (f", resumed from {args.jsonl} (outcomes of earlier runs of this script)." if args.resume else ".")
        + (f" {args.note}" if args.note else ""),
        "Not a CI test; `tests/pruning/test_zoo_handful.py` runs the same case function on a handful of models.",
        "",
        f"Each case builds the model with random weights and {args.num_classes} classes, prunes it one-shot to "
        f"channel sparsity {args.sparsity} of its scope, and checks: forward runs, output shape "
        f"(1, {args.num_classes}) and finite, the scope lost exactly the selected channels, MACs strictly "
        "reduced, and `save_pruned` / `load_pruned` gives bit-identical outputs. vbp statistics come from "
        f"{CALIBRATION_BATCHES} random batches of {CALIBRATION_BATCH_SIZE}; mac_aware wraps l1 with "
        f"beta {MAC_AWARE.beta} (costly channels first). Input size {args.size} unless the model rejects it "
        f"(then the first of {', '.join(map(str, LARGER_SIZES))} that runs; ViTs are built for the size "
        "rounded up to their patch). MACs / params columns are after / before. A case is stopped past a time or resident-memory "
        "limit (`--case-timeout`, `--memory-cap`; the reason names the limit); when the stop falls in the "
        "graph step, which every scope and criterion shares, the model's other cases are not rerun.",
        "",
        "## Summary",
        "",
        "| status | cases |",
        "| --- | --- |",
        *(f"| {status} | {counts[status]} |" for status in (OK, NO_CHANNELS, FAIL)),
        f"| total | {len(outcomes)} |",
        "",
        "| ok / cases | " + " | ".join(CRITERIA) + " |",
        "| --- |" + " --- |" * len(CRITERIA),
        *(f"| {scope} | " + " | ".join(_ok_share(outcomes, scope, criterion) for criterion in CRITERIA) + " |"
          for scope in SCOPES),
        "",
        *_failure_digest(outcomes),
        "## All cases",
        "",
        "| model | size | scope | criterion | channels in scope | sparsity | MACs | params | s | status | reason |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *(_row(o) for o in outcomes),
        "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


def _ok_share(outcomes: list[Outcome], scope: str, criterion: str) -> str:
    cases = [o for o in outcomes if (o.case.scope, o.case.criterion) == (scope, criterion)]
    return f"{sum(o.status == OK for o in cases)} / {len(cases)}"


def _revision() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _failure_digest(outcomes: list[Outcome]) -> list[str]:
    failed: dict[tuple[str, str], list[str]] = {}
    for o in outcomes:
        if o.status == FAIL:
            failed.setdefault((o.case.model, o.reason), []).append(f"{o.case.scope}/{o.case.criterion}")
    if not failed:
        return []
    return ["## Failures", "", "| model | cases | reason |", "| --- | --- | --- |",
            *(f"| {model} | {', '.join(cases)} | {_cell(reason)} |" for (model, reason), cases in failed.items()), ""]


def _row(o: Outcome) -> str:
    def number(value, digits=3):
        return "" if value is None else f"{value:.{digits}f}"

    c = o.case
    return (f"| {c.model} | {c.image_size} | {c.scope} | {c.criterion} | {o.channels} | {number(o.sparsity)} | "
            f"{number(o.mac_ratio)} | {number(o.params_ratio)} | {o.seconds:.1f} | {o.status} | {_cell(o.reason)} |")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _read_jsonl(path: Path) -> list[Outcome]:
    outcomes = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        outcomes.append(Outcome(Case(**row.pop("case")), **row))
    return outcomes


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", help="comma-separated names (default: every torchvision classifier)")
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
    names = args.models.split(",") if args.models else torchvision.models.list_models(module=torchvision.models)
    shard, shards = (int(part) for part in args.shard.split("/"))
    names = names[shard - 1 :: shards]
    outcomes = _read_jsonl(args.jsonl) if args.resume and args.jsonl.is_file() else []
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
