"""The results store: one Parquet row per (trial, step) of a search.

Columns: ``experiment``, ``trial`` (the Optuna trial number), ``trial_id`` (Ray's), the
step's report row (``pipeline/rows.py``: step, sparsity, accuracy, macs, params, ratios,
feasibility, phase seconds, running best, baseline), ``checkpoint`` (the folder of the
step's saved model, or empty when it was not kept), ``param.<name>`` for each searched
setting (``settings``: all of them as JSON) and ``config.<dotted.path>`` for the trial's
whole resolved config (lists and dicts as JSON text, so every column compares and groups).

The file is rewritten whole through a temporary file and a rename after every result
(``io.write_atomic``): a reader that opens it once (``read_store``, ``results.load``;
``pd.read_parquet(path)`` opens it twice) sees the previous file or the next, never a torn one, and
a crash loses only the result being written. Rewriting is cheap at this scale (one row
per pruning step; thousands of rows are a few hundred kB). If the file is lost,
``rows_from_experiment`` rebuilds the rows from Ray's per-trial ``result.json`` files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from prunetune.config import JobConfig
from prunetune.io import write_atomic
from prunetune.pipeline.rows import ROW_COLUMNS

STORE_NAME = "results.parquet"
CHECKPOINT_MODEL = "model.pt"  # the pruned model inside each kept step's checkpoint folder
KEY = ("trial_id", "step")


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
    """The rows of one experiment, kept in memory and mirrored to ``path`` after each change."""

    def __init__(self, path: Path, rows: list[dict[str, Any]] | None = None) -> None:
        """Rows from ``rows`` when given (a rebuild), else from the file when it exists."""
        self.path = Path(path)
        if rows is None:
            rows = read_store(self.path).to_dict("records") if self.path.is_file() else []
        self.rows: dict[tuple[str, int], dict[str, Any]] = {(row["trial_id"], int(row["step"])): row for row in rows}

    # Ray pickles callbacks into its experiment state and unpickles them on resume: the
    # rows must then come from the file, which holds what arrived since, not from the pickle.
    def __getstate__(self) -> dict:
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def put(self, row: dict[str, Any]) -> None:
        self.rows[(row["trial_id"], int(row["step"]))] = row
        self.write()

    def frame(self) -> pd.DataFrame:
        return order_rows(pd.DataFrame(list(self.rows.values())))

    def write(self) -> None:
        frame = self.frame()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, lambda target: frame.to_parquet(target, index=False))


def order_rows(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        return frame
    return frame.sort_values(["trial", "trial_id", "step"], kind="stable", na_position="last").reset_index(drop=True)


def read_store(path: Path) -> pd.DataFrame:
    """Read the store through one open file.

    pyarrow's path reader opens a file more than once (footer, then pages); if the writer
    renames a new file in between, it mixes two files and fails ("Page was smaller than
    expected"). One descriptor keeps the file it opened, whatever is renamed over the path.
    """
    with open(path, "rb") as file:
        return pd.read_parquet(file)


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
