"""The front as a table a person reads: who (trial, step), how (the settings that differ), what it gives."""

from __future__ import annotations

import pandas as pd

CRITERION = "config.pruning.criterion"


def mac_unit(macs: float) -> tuple[float, str]:
    """Scale and suffix so MAC counts read as M or G."""
    return (1e9, "G") if macs >= 1e9 else (1e6, "M")


def varying_params(front: pd.DataFrame) -> list[str]:
    """Searched settings (``param.*``) that take more than one value on the front."""
    return [column for column in front.columns
            if column.startswith("param.") and front[column].astype(str).nunique(dropna=False) > 1]


def front_table(front: pd.DataFrame) -> pd.DataFrame:
    if front.empty:
        return pd.DataFrame(columns=["trial", "step", "criterion", "accuracy", "MACs", "MAC ratio", "params"])
    scale, unit = mac_unit(front["macs"].max())
    table = pd.DataFrame({"trial": front["trial"].astype("Int64"), "step": front["step"].astype(int),
                          "criterion": front.get(CRITERION, pd.Series("", index=front.index))})
    shown = [c for c in varying_params(front) if c != f"param.{CRITERION.removeprefix('config.')}"]
    for column, header in zip(shown, short_names([c.removeprefix("param.") for c in shown])):
        table[header] = front[column].map(_short)
    table["accuracy"] = front["accuracy"].round(4)
    table["MACs"] = (front["macs"] / scale).map(lambda v: f"{v:.2f}{unit}")
    table["MAC ratio"] = front["mac_ratio"].round(3)
    table["params"] = front["params"].astype(int)
    if "effective_macs" in front.columns and (front["effective_macs"].fillna(front["macs"]) != front["macs"]).any():
        # Multiply-adds with a non-zero weight (TKP / N:M rows): theoretical, dense kernels do them all.
        table["eff. MACs (theoretical)"] = (front["effective_macs"].fillna(front["macs"]) / scale).map(
            lambda v: f"{v:.2f}{unit}")
    if "latency_ms" in front.columns and front["latency_ms"].notna().any():
        table["latency ms"] = front["latency_ms"].round(3)
    return table.reset_index(drop=True)


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else value


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
