"""YAML search spaces turned into Optuna define-by-run spaces (see the search issue)."""
