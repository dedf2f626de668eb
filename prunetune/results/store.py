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
most ``write_share`` of the time since the last one.

Every row is also appended to a journal next to it (``results.journal.jsonl``, one JSON line
per row, fsynced) before it counts as stored, and the journal is never emptied: it is the
durable copy, the Parquet file the fast one. The file records in its metadata how much of
the journal it holds, so ``read_store`` and a restarted driver read only the journal's tail;
a killed driver loses at most the line being appended, and a lost or damaged file is rebuilt
from the whole journal (``results/experiment.py``). ``rows_from_experiment`` adds the rows of
Ray's per-trial ``result.json`` files (Ray copies those to storage only now and then, so
after a hard kill they can be older than the journal).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prunetune.config import JobConfig
from prunetune.errors import UserError
from prunetune.io import write_atomic
from prunetune.step_row import ROW_COLUMNS

JOURNAL_SUFFIX = ".journal.jsonl"  # results.journal.jsonl: every row, appended as it arrives
JOURNAL_END = b"prunetune.journal_end"  # Parquet metadata: the journal bytes and lines the file holds


class DamagedStoreError(UserError):
    """The Parquet file is not one (truncated, garbage, empty): set it aside and rebuild."""

    def __init__(self, path: Path, reason: str, inode: int | None) -> None:
        super().__init__(f"{path} is damaged ({reason}); `prunetune status NAME` sets it aside and rebuilds it")
        self.path, self.reason, self.inode = Path(path), reason, inode


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
        try:
            frame, tail = read_parts(self.path)
        except DamagedStoreError as damaged:
            set_aside(damaged)  # its rows are all in the journal
            frame, tail = pd.DataFrame(), read_journal(self.path)
        rows = frame.to_dict("records") + tail
        self.rows: dict[tuple[str, int], dict[str, Any]] = {row_key(row): row for row in rows}
        self.unwritten = bool(tail) or (bool(rows) and not self.path.is_file())
        self.journal_end = _journal_end(self.journal)  # (bytes, lines) of the journal
        self.next_write = 0.0  # time.monotonic() from which a rewrite is due

    # Ray pickles callbacks into its experiment state and unpickles them on resume: the
    # rows must then come from the file, which holds what arrived since, not from the pickle.
    def __getstate__(self) -> dict:
        return {"path": self.path, "write_share": self.write_share}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["write_share"])

    def put(self, row: dict[str, Any]) -> None:
        self._append([row])
        self.rows[row_key(row)] = row
        self.unwritten = True
        self.write_if_due()

    def _append(self, rows: list[dict[str, Any]]) -> None:
        # fsync per row: a row Ray handed the driver is on disk before the driver moves on
        # (bench/store_writes.py times it), so a SIGKILL or power loss loses no reported step.
        if not rows:
            return
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(row, default=_plain) + "\n" for row in rows).encode()
        with self.journal.open("ab") as journal:
            if journal.tell() < self.journal_end[0]:
                self.journal_end = (0, 0)  # the journal was replaced or cut: the next rewrite reads it all
            journal.write(text)
            journal.flush()
            os.fsync(journal.fileno())
            self.journal_end = (journal.tell(), self.journal_end[1] + len(rows))

    def merge(self, rows: list[dict[str, Any]]) -> int:
        """Add the rows whose (trial, step) the store lacks; returns how many were added."""
        missing = [row for row in rows if row_key(row) not in self.rows]
        self._append(missing)
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
        table = pa.Table.from_pandas(self.frame(), preserve_index=False)
        end = f"{self.journal_end[0]} {self.journal_end[1]}".encode()
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), JOURNAL_END: end})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, lambda target: pq.write_table(table, target))
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


def read_journal(path: Path, start: tuple[int, int] = (0, 0)) -> list[dict[str, Any]]:
    """The journal's rows from byte ``start[0]`` on (line ``start[1] + 1``), the file's tail."""
    journal = journal_path(path)
    try:
        with journal.open("rb") as file:
            if file.seek(0, os.SEEK_END) < start[0]:
                start = (0, 0)  # shorter than the file says: not the journal it was written with
            file.seek(start[0])
            lines = file.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    rows = []
    for number, line in enumerate(lines, start=start[1] + 1):
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


def _journal_end(journal: Path) -> tuple[int, int]:
    try:
        data = journal.read_bytes()
    except FileNotFoundError:
        return 0, 0
    if data and not data.endswith(b"\n"):  # a line a kill cut short: the next row starts a new line
        with journal.open("ab") as file:
            file.write(b"\n")
        data += b"\n"
    return len(data), data.count(b"\n")


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
    """The store's rows: the Parquet file, read through one open file, plus its journal's tail."""
    frame, tail = read_parts(path)
    if not tail:
        return frame
    rows = {row_key(row): row for row in frame.to_dict("records")}
    rows.update({row_key(row): row for row in tail})
    return order_rows(pd.DataFrame(list(rows.values())))


def read_parts(path: Path) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """The Parquet file's rows and the journal rows after those it holds.

    pyarrow's path reader opens a file more than once (footer, then pages); if the writer
    renames a new file in between, it mixes two files and fails ("Page was smaller than
    expected"). One descriptor keeps the file it opened, whatever is renamed over the path,
    and its metadata names the journal end it holds, so the tail read next completes it.
    A file that is not Parquet raises ``DamagedStoreError``; a missing one means the journal.
    """
    try:
        with open(path, "rb") as file:
            inode = os.fstat(file.fileno()).st_ino
            try:
                table = pq.ParquetFile(file).read()
            except (pa.ArrowException, OSError) as error:
                raise DamagedStoreError(path, str(error).split(". ")[0], inode) from None
    except FileNotFoundError:
        return pd.DataFrame(), read_journal(path)
    end = (table.schema.metadata or {}).get(JOURNAL_END)
    # A file without the mark predates the append-only journal, which then held only its tail.
    start = tuple(int(part) for part in end.split()) if end else (0, 0)
    return table.to_pandas(), read_journal(path, start)


def set_aside(damaged: DamagedStoreError) -> Path | None:
    """Rename a damaged store to ``results.parquet.damaged-<time>`` and say so; None if it changed since."""
    try:
        if os.stat(damaged.path).st_ino != damaged.inode:
            return None  # the driver replaced it with a whole file since it was read
        target = damaged.path.with_name(f"{damaged.path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(damaged.path, target)
    except FileNotFoundError:
        return None
    warnings.warn(f"{damaged.path} is damaged ({damaged.reason}); set it aside as {target.name}", stacklevel=2)
    return target


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
