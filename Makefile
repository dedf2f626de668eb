# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each creates the virtual environment first if it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv dot clean

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

test: $(STAMP) dot
	$(BIN)/python -m pytest -q

# Graphviz's `dot` renders `prunetune graph` drawings. Installed with apt-get when missing and
# this user may (root, or sudo without a password); otherwise one line says what to install and
# the render tests skip. `make dot REQUIRE_DOT=1` (CI) fails instead.
APT_GRAPHVIZ := env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
dot:
	@command -v dot >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else exit 0; fi; \
	  echo "installing Graphviz (apt-get install graphviz) for prunetune graph"; \
	  $$SUDO $(APT_GRAPHVIZ) 2>/dev/null || { $$SUDO apt-get update -qq && $$SUDO $(APT_GRAPHVIZ); }; }
	@command -v dot >/dev/null 2>&1 || { echo "Graphviz's dot is missing: install the package graphviz (apt-get install graphviz, brew install graphviz) to render prunetune graph drawings"; test -z "$(REQUIRE_DOT)"; }

# Benchmarks: a quick CPU set, or the full set when a GPU is present (bench/README.md).
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) runs .pytest_cache
