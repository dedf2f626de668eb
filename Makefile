# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each creates the virtual environment first if it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv clean

# The CPU torch wheel under PIP_FIND_LINKS cannot import PyPI's torchvision, so the
# install ignores find-links and takes the pinned pair from PyPI.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PIP_FIND_LINKS= $(BIN)/python -m pip install --quiet --upgrade pip
	PIP_FIND_LINKS= $(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# A small multi-objective search on the embedded default; each call is a new search.
demo: $(STAMP)
	$(BIN)/prunetune search examples/digits_search.yaml --name demo-$$(date +%Y%m%d-%H%M%S)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Benchmarks: a quick CPU set, or the full set when a GPU is present (bench/README.md).
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
