"""The zoo sweep's outcomes and their report: one section per zoo in docs/zoo-sweep.md.

A section sits between ``<!-- zoo-sweep:NAME:start -->`` and ``<!-- zoo-sweep:NAME:end -->``
and is rewritten whole by each run of that zoo; text outside the markers (the commentary on
the failures) is left as it is. ``--update`` keeps the rows of models not rerun, read back
from the section's table, so a few families can be rerun without the whole zoo.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SCOPES = ("all", "expand")
CRITERIA = ("l1", "vbp", "mac_aware")
# refused: prunetune declined the model before any work, with a one-line reason (ModelError / UserError).
OK, NO_CHANNELS, REFUSED, FAIL = "ok", "no channels in scope", "refused", "fail"
STATUSES = (OK, NO_CHANNELS, REFUSED, FAIL)
TABLE_HEADER = "| model | size | scope | criterion | channels in scope | sparsity | MACs | params | s | status | reason |"


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


def versions() -> str:
    return ", ".join(f"{package} {importlib.metadata.version(package)}"
                     for package in ("torch", "torchvision", "torch-pruning", "timm"))


def revision() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def render_section(title: str, header: list[str], outcomes: list[Outcome]) -> list[str]:
    """The section's lines: title, ``header`` paragraphs, summary, failures, refusals, all cases."""
    outcomes = sorted(outcomes, key=lambda o: (o.case.model, SCOPES.index(o.case.scope),
                                               CRITERIA.index(o.case.criterion)))
    counts = Counter(o.status for o in outcomes)
    return [
        f"## {title}", "", *header, "",
        "### Summary", "",
        "| status | cases |", "| --- | --- |",
        *(f"| {status} | {counts[status]} |" for status in STATUSES),
        f"| total | {len(outcomes)} |", "",
        "| ok / cases | " + " | ".join(CRITERIA) + " |",
        "| --- |" + " --- |" * len(CRITERIA),
        *(f"| {scope} | " + " | ".join(_ok_share(outcomes, scope, criterion) for criterion in CRITERIA) + " |"
          for scope in SCOPES), "",
        *_digest(outcomes, FAIL, "Failures"),
        *_digest(outcomes, REFUSED, "Refusals (one line each, before any work)"),
        "### All cases", "",
        TABLE_HEADER, "| --- " * 11 + "|",
        *(_row(o) for o in outcomes), "",
    ]


def write_section(path: Path, zoo: str, lines: list[str]) -> None:
    """Replace zoo's section of ``path`` (or append it) with ``lines``."""
    start, end = f"<!-- zoo-sweep:{zoo}:start -->", f"<!-- zoo-sweep:{zoo}:end -->"
    text = path.read_text() if path.is_file() else ""
    block = "\n".join([start, *lines, end])
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def read_section(path: Path, zoo: str) -> list[Outcome]:
    """The outcomes in zoo's section table (the whole file for a report older than sections)."""
    if not path.is_file():
        return []
    text = path.read_text()
    start, end = f"<!-- zoo-sweep:{zoo}:start -->", f"<!-- zoo-sweep:{zoo}:end -->"
    if start in text and end in text:
        text = text[text.index(start): text.index(end)]
    return [outcome for line in text.splitlines() if (outcome := _parse_row(line)) is not None]


def _parse_row(line: str) -> Outcome | None:
    cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
    if len(cells) != 11 or cells[2] not in SCOPES or cells[3] not in CRITERIA or cells[9] not in STATUSES:
        return None
    model, size, scope, criterion, channels, sparsity, macs, params, seconds, status, reason = cells

    def number(value: str) -> float | None:
        return float(value) if value else None

    return Outcome(Case(model, scope, criterion, int(size)), status, reason, int(channels), number(sparsity),
                   number(macs), number(params), float(seconds))


def _ok_share(outcomes: list[Outcome], scope: str, criterion: str) -> str:
    cases = [o for o in outcomes if (o.case.scope, o.case.criterion) == (scope, criterion)]
    return f"{sum(o.status == OK for o in cases)} / {len(cases)}"


def _digest(outcomes: list[Outcome], status: str, title: str) -> list[str]:
    grouped: dict[tuple[str, str], list[str]] = {}
    for o in outcomes:
        if o.status == status:
            grouped.setdefault((o.case.model, o.reason), []).append(f"{o.case.scope}/{o.case.criterion}")
    if not grouped:
        return []
    return [f"### {title}", "", "| model | cases | reason |", "| --- | --- | --- |",
            *(f"| {model} | {', '.join(cases)} | {_cell(reason)} |" for (model, reason), cases in grouped.items()), ""]


def _row(o: Outcome) -> str:
    def number(value, digits=3):
        return "" if value is None else f"{value:.{digits}f}"

    c = o.case
    return (f"| {c.model} | {c.image_size} | {c.scope} | {c.criterion} | {o.channels} | {number(o.sparsity)} | "
            f"{number(o.mac_ratio)} | {number(o.params_ratio)} | {o.seconds:.1f} | {o.status} | {_cell(o.reason)} |")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
