"""Search results: the per-step Parquet store, Pareto fronts and budget queries, plots, export.

Each name loads its module when first used (PEP 562), so importing the package stays
light: plots need matplotlib and export needs torch, and only a caller of those pays.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULE_OF = {
    "load": "experiment", "rebuild": "experiment",
    "Exported": "export", "export_model": "export", "export_run": "export",
    "DEFAULT_OBJECTIVES": "front", "FrontComparison": "front", "best_within_macs": "front",
    "cheapest_above": "front", "compare_fronts": "front", "hypervolume": "front", "pareto_front": "front",
    "write_report": "report",
    "front_records": "tables", "front_table": "tables",
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
