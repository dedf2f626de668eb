"""The results store: one Parquet row per (trial, step) of a search.

Columns: ``experiment``, ``trial`` (the Optuna trial number), ``trial_id`` (Ray's), the
step's report row (``step_row.py``: step, sparsity, accuracy, macs, params, ratios,
feasibility, phase seconds, running best, baseline), ``checkpoint`` (the folder of the
step's saved model, or empty when it was not kept), ``param.<name>`` for each searched
setting (``settings``: all of them as JSON) and ``config.<dotted.path>`` for the trial's
whole resolved config (lists and dicts as JSON text, so every column compares and groups).

The file is rewritten whole through a temporary file and a rename (``io.write_atomic``): a
reader that opens it once (``read_store``, ``results.load``; ``pd.read_parquet(path)`` opens it
twice) sees the previous file or the next, never a torn one. A rewrite costs ~0.05 s at a
few hundred rows and ~0.6 s at ten thousand, and the driver that writes it also handles
every trial's results, so the store rewrites at once only when its rewrites have taken at
most ``write_share`` of the time since the last one. Until then each new row is appended to
a journal next to it (``results.journal.jsonl``, one JSON line per row, emptied by the next
rewrite), which ``read_store`` and a restarted driver read too: a killed driver loses at most
the line being appended. ``rows_from_experiment`` rebuilds the rows from Ray's per-trial
``result.json`` files when the file is lost (Ray copies those to storage only now and then,
so after a hard kill they can be older than the store).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from prunetune.config import JobConfig
from prunetune.io import write_atomic
from prunetune.step_row import ROW_COLUMNS

JOURNAL_SUFFIX = ".journal.jsonl"  # results.journal.jsonl: rows not yet in the Parquet file


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, into)
    else:
        into[prefix] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else value


def config_columns(config: JobConfig) -> dict[str, Any]:
    columns: dict[str, Any] = {}
    for section, value in config.to_dict().items():
        _flatten(f"config.{section}", value, columns)
    return columns


def make_row(experiment: str, number: int | None, trial_id: str, result: dict, params: dict, resolved: JobConfig,
             checkpoint: str | None) -> dict[str, Any]:
    """One store row from a trial's report (a pipeline row plus Ray's bookkeeping)."""
    row = {"experiment": experiment, "trial": number, "trial_id": trial_id}
    row.update({column: result.get(column) for column in ROW_COLUMNS})
    row["trial_seconds"] = result.get("time_total_s")  # Ray's wall clock of the trial up to this step
    row["checkpoint"] = checkpoint or ""
    row["settings"] = json.dumps(params, sort_keys=True)  # the searched values, exact, to re-apply the space
    row.update({f"param.{name}": json.dumps(value) if isinstance(value, (list, dict)) else value
                for name, value in params.items()})
    row.update(config_columns(resolved))
    return row


class Store:
    """The rows of one experiment, kept in memory and mirrored to ``path``."""

    def __init__(self, path: Path, write_share: float = 0.1) -> None:
        """The rows of the file and its journal, when they exist.

        ``write_share``: the largest fraction of the time the store spends rewriting the
        file (1: every put rewrites it).
        """
        self.path = Path(path)
        self.journal = journal_path(self.path)
        self.write_share = write_share
        rows = read_store(self.path).to_dict("records") if self.path.is_file() or self.journal.is_file() else []
        self.rows: dict[tuple[str, int], dict[str, Any]] = {row_key(row): row for row in rows}
        self.unwritten = self.journal.is_file()  # a journal left by a driver that stopped: fold it in
        self.next_write = 0.0  # time.monotonic() from which a rewrite is due

    # Ray pickles callbacks into its experiment state and unpickles them on resume: the
    # rows must then come from the file, which holds what arrived since, not from the pickle.
    def __getstate__(self) -> dict:
        return {"path": self.path, "write_share": self.write_share}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["write_share"])

    def put(self, row: dict[str, Any]) -> None:
        self.rows[row_key(row)] = row
        self.unwritten = True
        if self.write_if_due():
            return
        with self.journal.open("a") as journal:  # the folder exists: a store's first put always rewrites
            journal.write(json.dumps(row, default=_plain) + "\n")

    def merge(self, rows: list[dict[str, Any]]) -> int:
        """Add the rows whose (trial, step) the store lacks; returns how many were added."""
        missing = [row for row in rows if row_key(row) not in self.rows]
        for row in missing:
            self.rows[row_key(row)] = row
        self.unwritten = self.unwritten or bool(missing)
        return len(missing)

    def write_if_due(self) -> bool:
        if self.unwritten and time.monotonic() >= self.next_write:
            self.write()
            return True
        return False

    def flush(self) -> None:
        if self.unwritten:
            self.write()

    def frame(self) -> pd.DataFrame:
        return order_rows(pd.DataFrame(list(self.rows.values())))

    def write(self) -> None:
        started = time.monotonic()
        frame = self.frame()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, lambda target: frame.to_parquet(target, index=False))
        self.journal.unlink(missing_ok=True)  # after the rename: every journal row is in the file now
        self.unwritten = False
        spent = time.monotonic() - started
        self.next_write = started + spent / self.write_share


def order_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame.sort_values(["trial", "trial_id", "step"], kind="stable", na_position="last").reset_index(drop=True)


def row_key(row: dict[str, Any]) -> tuple[str, int]:
    return row["trial_id"], int(row["step"])


def journal_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).stem + JOURNAL_SUFFIX)


def _plain(value: Any) -> Any:
    """JSON for NumPy scalars (rows read back from Parquet hold them)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to the results journal")


def read_journal(path: Path) -> list[dict[str, Any]]:
    journal = journal_path(path)
    try:
        lines = journal.read_text().splitlines()
    except FileNotFoundError:
        return []
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # the line being appended, or one a kill cut short
        why = _not_a_row(row)
        if why:
            # Only a hand edit or a damaged disk writes this; the store's other rows still count.
            warnings.warn(f"{journal}: line {number} is not a results row ({why}); skipped", stacklevel=2)
            continue
        rows.append(row)
    return rows


def _not_a_row(row: Any) -> str | None:
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not an object"
    missing = [key for key in ("trial_id", "step") if key not in row]
    if missing:
        return f"no {' or '.join(missing)}"
    if isinstance(row["step"], bool) or not isinstance(row["step"], int):
        return f"step {row['step']!r} is not a whole number"
    return None


def read_store(path: Path) -> pd.DataFrame:
    """The store's rows: the Parquet file, read through one open file, plus its journal.

    pyarrow's path reader opens a file more than once (footer, then pages); if the writer
    renames a new file in between, it mixes two files and fails ("Page was smaller than
    expected"). One descriptor keeps the file it opened, whatever is renamed over the path.
    The journal is read first: rows leave it only after the rewritten file holding them is
    in place, so a reader never sees fewer rows than a reader before it.
    """
    pending = read_journal(path)
    try:
        with open(path, "rb") as file:
            frame = pd.read_parquet(file)
    except FileNotFoundError:
        if not pending:
            raise
        frame = pd.DataFrame()
    if not pending:
        return frame
    rows = {row_key(row): row for row in frame.to_dict("records")}
    rows.update({row_key(row): row for row in pending})
    return order_rows(pd.DataFrame(list(rows.values())))


def rows_from_experiment(experiment_dir: Path, experiment: str, job: JobConfig, space,
                         number_of: Callable[[str], int | None]) -> list[dict[str, Any]]:
    """Rebuild the store's rows from Ray's trial folders (``result.json``, ``params.json``)."""
    rows = []
    for results in sorted(Path(experiment_dir).glob("*/result.json")):
        trial_dir = results.parent
        params_file = trial_dir / "params.json"
        params = json.loads(params_file.read_text()) if params_file.is_file() else {}
        resolved = space.apply(job, params)
        for line in results.read_text().splitlines():
            if not line.strip():
                continue
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash: the rows before it are whole
            if "step" not in result:
                continue
            name = result.get("checkpoint_dir_name")
            rows.append(make_row(experiment, number_of(result["trial_id"]), result["trial_id"], result, params,
                                 resolved, str(trial_dir / name) if name else None))
    return rows
