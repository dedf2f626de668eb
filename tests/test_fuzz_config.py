"""Hostile values for every config field, as an override and in a job file: `prunetune config`
exits 2 with one line naming the field (or the override; one line per problem when one value
breaks several rules), or exits 0 with a value the run can use.

Derandomized and bounded (200 examples each, ~5 s on a slow core) so CI sees the same cases every time.
"""

import math
import typing

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.reference import reference
from prunetune.spaces.schema import ConfigFields, get_path

runner = CliRunner()
FIELDS = [path for path, *_ in reference()]
NUMERIC_FIELDS = [path for path, kind, *_ in reference() if kind.startswith(("int", "float", "tuple"))]
SECTIONS = sorted({path.rsplit(".", 1)[0] for path in FIELDS if "." in path})
PATHS = st.one_of(st.sampled_from(NUMERIC_FIELDS), st.sampled_from(FIELDS), st.sampled_from(SECTIONS),
                  st.sampled_from(FIELDS).map(lambda p: p + "x"))
# Numbers a field's type takes but a run cannot use: each its own branch, so 200 examples meet them often.
HOSTILE_NUMBERS = [".inf", "-.inf", ".nan", "inf", "nan", "1e400", "-1e400", "-1", "4294967296", "1e20",
                   "100000000000000000000", "[]", "[.nan]", "[0.1, .inf]"]
# Strings YAML reads as something else, strings Rich would read as markup, broken YAML.
SPECIAL = ["~", "null", "yes", "off", ".inf", "-.inf", ".nan", "NaN", "1e400", "-1e400", "0x1F", "0o17", "1_000",
           "2024-05-01", "[", "]", "{", "}", "[low, high]", "[bold red]x[/]", "&a", "*a", "!!python/object:os.system",
           "!!binary aGk=", "!!set {a}", "'", '"', "#", "a: b", "- x", "|", ">", "%YAML 1.1", "@", "`", "<<: {a: 1}",
           "{a: 1, a: 2}", "[1, 2", "\t", "", " ", "4294967296", "-1", "1e20", "{choice: [1.0, .inf]}",
           "{uniform: [.nan, 1]}", "{choice: []}", "{int: [1, 1e400]}"]
NUMBERS = st.one_of(st.integers(-2**70, 2**70), st.floats(), st.sampled_from([2**32 - 1, 2**32, -1, 0, 1e20, 1e-320]))
SCALARS = st.one_of(NUMBERS, st.booleans(), st.none(), st.sampled_from(SPECIAL), st.text(max_size=12))
KEYS = st.one_of(st.sampled_from(["choice", "uniform", "int", "when", "name", "lr", "a"]), st.text(max_size=6))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(KEYS, inner, max_size=3)), max_leaves=6)
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _flow_yaml(value):
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("...\n").strip()


TEXTS = st.one_of(st.sampled_from(HOSTILE_NUMBERS), st.sampled_from(SPECIAL), NUMBERS.map(_flow_yaml),
                  VALUES.map(_flow_yaml), st.text(max_size=15))


@pytest.fixture
def job_file(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("model: {name: tiny_cnn}\n")
    return path


def _bounds(annotation, metadata=()):
    """The ge / gt / le / lt constraints of a field, and of its entries (tuple[Fraction, ...])."""
    found = [item for item in metadata if any(hasattr(item, key) for key in ("ge", "gt", "le", "lt"))]
    for argument in typing.get_args(annotation):
        found += _bounds(argument, getattr(argument, "metadata", ()))
    return found


def _numbers(value):
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [number for item in items for number in _numbers(item)]


def _meets(number, bound):
    checks = {"ge": number.__ge__, "gt": number.__gt__, "le": number.__le__, "lt": number.__lt__}
    return all(checks[key](getattr(bound, key)) for key in checks if hasattr(bound, key))


def _check_outcome(result, path, named_by):
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        # One line, or (several problems at once, as ConfigError lists them) one line per problem.
        first, *problems = result.output.rstrip("\n").split("\n")
        assert first.startswith("error: ") and (not problems or first == "error: invalid config:"), result.output
        assert all(line.startswith("  ") and ": " in line for line in problems), result.output
        section, _, leaf = path.rpartition(".")
        assert any(path in line or (section in line and leaf in line) or named_by in line
                   for line in [first, *problems]), result.output
        return
    config = yaml.safe_load(result.output)
    fields = ConfigFields()
    if fields.is_leaf(path):
        info = fields.field(path)
        bounds = _bounds(info.annotation, info.metadata)
        for number in [] if fields.takes_mappings(path) else _numbers(get_path(config, path)):
            assert math.isfinite(number) and all(_meets(number, bound) for bound in bounds), (path, number)
    assert all(math.isfinite(number) for number in _numbers(config["search"]["space"])), config["search"]["space"]


@SETTINGS
@given(path=PATHS, text=TEXTS)
def test_any_override_exits_2_naming_it_in_one_line_or_sets_a_usable_value(job_file, path, text):
    override = f"{path}={text}"
    result = runner.invoke(app, ["config", str(job_file), override])
    _check_outcome(result, path, repr(override))


@SETTINGS
@given(path=PATHS, value=st.one_of(st.sampled_from(HOSTILE_NUMBERS).map(yaml.safe_load), VALUES))
def test_any_value_in_a_job_file_exits_2_naming_it_in_one_line_or_is_usable(job_file, path, value):
    nested = value
    for part in reversed(path.split(".")):
        nested = {part: nested}
    nested.setdefault("model", {"name": "tiny_cnn"})
    job_file.write_text(yaml.safe_dump(nested))
    result = runner.invoke(app, ["config", str(job_file)])
    _check_outcome(result, path, f"config file '{job_file}'")
