"""The front as tables: for people (``front_table``: one format per column) and for machines
(``front_records``: raw numbers, units in the column names, the settings with their own types).

People read accuracy with 4 decimals, ratios as percentages, MAC and parameter counts scaled to
one unit per column (K, M or G: "50.68M" next to "9.81M", never "0.05M" next to "980K"), and
each searched setting with 3 significant digits ("0.670" next to "0.657").
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable

import pandas as pd

CRITERION = "config.pruning.criterion"
COUNT_UNITS = ((1e9, "G"), (1e6, "M"), (1e3, "K"))


def mac_unit(macs: float) -> tuple[float, str]:
    """Scale and suffix so MAC counts read as M or G (the plots' axis)."""
    return (1e9, "G") if macs >= 1e9 else (1e6, "M")


def count_format(values: Iterable[float]) -> Callable[[float], str]:
    """One format for a column of counts (MACs, params): the unit its largest value reads best in."""
    largest = max((abs(v) for v in values if not _missing(v)), default=0.0)
    scale, unit = next(((s, u) for s, u in COUNT_UNITS if largest >= s), (1.0, ""))
    if not unit:
        return lambda value: "-" if _missing(value) else f"{value:,.0f}"
    return lambda value: "-" if _missing(value) else f"{value / scale:,.2f}{unit}"


def accuracy_text(value: float) -> str:
    return "-" if _missing(value) else f"{value:.4f}"


def percent_text(ratio: float) -> str:
    return "-" if _missing(ratio) else f"{ratio:.1%}"


def setting_text(value) -> str:
    """A searched setting: floats with 3 significant digits, trailing zeros kept."""
    if _missing(value):
        return "-"
    if isinstance(value, float):
        return f"{value:#.3g}".rstrip(".")
    return str(value)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def varying_params(front: pd.DataFrame) -> list[str]:
    """Searched settings (``param.*``) that take more than one value on the front."""
    return [column for column in front.columns
            if column.startswith("param.") and front[column].astype(str).nunique(dropna=False) > 1]


def front_table(front: pd.DataFrame) -> pd.DataFrame:
    """The front for people: who (trial, step), how (the settings that differ), what it gives; text cells."""
    if front.empty:
        return pd.DataFrame(columns=["trial", "step", "criterion", "accuracy", "MACs", "MAC ratio", "params"])
    table = pd.DataFrame({"trial": front["trial"].astype("Int64").astype(str).replace("<NA>", "-"),
                          "step": front["step"].astype(int).astype(str),
                          "criterion": front.get(CRITERION, pd.Series("", index=front.index))})
    shown = [c for c in varying_params(front) if c != f"param.{CRITERION.removeprefix('config.')}"]
    settings = searched_settings(front)
    for column, header in zip(shown, short_names([c.removeprefix("param.") for c in shown])):
        name = column.removeprefix("param.")
        table[header] = [setting_text(values.get(name)) for values in settings] if settings is not None else \
            front[column].map(setting_text).tolist()
    table["accuracy"] = front["accuracy"].map(accuracy_text)
    table["MACs"] = front["macs"].map(count_format(front["macs"]))
    table["MAC ratio"] = front["mac_ratio"].map(percent_text)
    table["params"] = front["params"].map(count_format(front["params"]))
    if "latency_ms" in front.columns and front["latency_ms"].notna().any():
        table["latency ms"] = front["latency_ms"].map(lambda v: "-" if _missing(v) else f"{v:.3f}")
    return table.reset_index(drop=True)


MACHINE_COLUMNS = ["trial", "step", "phase", "feasible", "accuracy", "macs", "mac_ratio", "params"]


def front_records(front: pd.DataFrame) -> pd.DataFrame:
    """The front for machines: raw numbers (accuracy and mac_ratio as fractions, counts as integers,
    ``latency_ms`` where measured), then each searched setting under its dotted path with the value
    the trial ran (``null`` where a condition left it out), and ``pruning.criterion`` always."""
    records = pd.DataFrame({column: front[column] for column in MACHINE_COLUMNS if column in front.columns})
    for column in ("trial", "step", "macs", "params"):
        if column in records:
            records[column] = records[column].astype("Int64")
    if "latency_ms" in front.columns and front["latency_ms"].notna().any():
        records["latency_ms"] = front["latency_ms"]
    settings = searched_settings(front) or []
    for name in sorted({key for values in settings for key in values}):
        records[name] = pd.Series([values.get(name) for values in settings], index=front.index, dtype=object)
    if "pruning.criterion" not in records and CRITERION in front.columns:
        records["pruning.criterion"] = front[CRITERION]
    return records.reset_index(drop=True)


def searched_settings(front: pd.DataFrame) -> list[dict] | None:
    """Each row's searched values as the trial ran them (the ``settings`` JSON keeps their types:
    ``param.*`` columns turn an integer setting into a float where another row lacks it)."""
    if "settings" not in front.columns:
        return None
    return [json.loads(text) if isinstance(text, str) and text else {} for text in front["settings"]]


def records_json(records: pd.DataFrame) -> str:
    """``front_records`` as a JSON list of objects: full precision, ``null`` for missing values."""
    rows = [{key: _plain(value) for key, value in row.items()} for row in records.to_dict(orient="records")]
    return json.dumps(rows, indent=2, allow_nan=False)


def _plain(value):
    value = value.item() if hasattr(value, "item") else value
    return None if _missing(value) else value


def short_names(paths: list[str]) -> list[str]:
    """Each dotted path cut to its shortest suffix that no other path shares (lr, schedule.steps)."""
    names = []
    for path in paths:
        parts = path.split(".")
        for size in range(1, len(parts) + 1):
            suffix = ".".join(parts[-size:])
            if sum(other == suffix or other.endswith("." + suffix) for other in paths) == 1:
                names.append(suffix)
                break
        else:
            names.append(path)
    return names
