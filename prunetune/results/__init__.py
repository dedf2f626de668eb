"""The Parquet store of every trial step, Pareto fronts, plots and export (see the results issue)."""
