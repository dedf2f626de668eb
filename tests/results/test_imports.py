"""Reading results stays light: no Ray, torch or pyplot, and nothing from the search layer above."""

import subprocess
import sys
from pathlib import Path

import pytest

import prunetune.results as results

FORBIDDEN = ("ray", "torch", "matplotlib.pyplot", "prunetune.search")
REPOSITORY = Path(__file__).resolve().parents[2]


def run_fresh(code: str) -> str:
    """stdout of ``code`` in a new interpreter, where nothing is imported yet."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPOSITORY)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def loaded_after(statement: str) -> list[str]:
    return run_fresh(f"import sys\n{statement}\nprint(' '.join(m for m in {FORBIDDEN!r} if m in sys.modules))").split()


def test_importing_the_results_package_loads_neither_ray_nor_torch_nor_pyplot():
    assert loaded_after("from prunetune import results") == []


@pytest.mark.parametrize("module", ["experiment", "store", "front", "tables", "report"])
def test_each_results_module_but_export_loads_neither_ray_nor_torch_nor_pyplot_nor_search(module):
    assert loaded_after(f"import prunetune.results.{module}") == []


def test_importing_the_report_keeps_the_matplotlib_backend_the_caller_chose():
    backend = run_fresh("import matplotlib\nmatplotlib.use('svg')\nimport prunetune.results.report\n"
                        "print(matplotlib.get_backend())")
    assert backend == "svg"


def test_every_name_the_results_package_lists_resolves_to_its_modules_object():
    from prunetune.results.export import export_model
    from prunetune.results.front import pareto_front

    assert all(getattr(results, name) is not None for name in results.__all__)
    assert results.export_model is export_model and results.pareto_front is pareto_front
    assert set(results.__all__) <= set(dir(results))
