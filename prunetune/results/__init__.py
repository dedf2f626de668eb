"""Search results: the per-step Parquet store, Pareto fronts and budget queries, plots, export."""

from prunetune.results.experiment import load, rebuild
from prunetune.results.export import Exported, export_model
from prunetune.results.front import (DEFAULT_OBJECTIVES, FrontComparison, best_within_macs, cheapest_above,
                                     compare_fronts, hypervolume, pareto_front)
from prunetune.results.report import write_report
from prunetune.results.tables import front_table

__all__ = ["DEFAULT_OBJECTIVES", "Exported", "FrontComparison", "best_within_macs", "cheapest_above",
           "compare_fronts", "export_model", "front_table", "hypervolume", "load", "pareto_front", "rebuild",
           "write_report"]
