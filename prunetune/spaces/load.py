"""The edge: a job YAML (or mapping) with distributions in, a fixed config and a space out.

``load_search`` is to a search what ``load_config`` is to a single run: everything is
checked here, before Ray starts, and every problem is raised at once as a ``ConfigError``
that names the path, the bad value and what is allowed.

The returned config is the fixed part (a field searched inline holds its default there, a
field searched in ``search.space`` the value its section gives, if any) with the
whole space written into ``search.space`` in its canonical form (dotted keys, inline
distributions moved in, the default space spelled out), so ``config.to_dict()`` alone
reproduces the search: ``build_search(config.to_dict())`` gives the same pair back.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from prunetune.config import JobConfig, apply_overrides, read_yaml, validate_config
from prunetune.errors import ConfigError
from prunetune.spaces.checks import (
    check_combinations,
    check_field_values,
    order_parameters,
    parse_parameters,
    resolve_conditions,
)
from prunetune.spaces.extract import Entry, split_search
from prunetune.spaces.parameters import Parameter
from prunetune.spaces.partial import check_partial_settings
from prunetune.spaces.schema import ConfigFields, get_path, leaf_paths
from prunetune.spaces.space import SearchSpace

DEFAULT_SPACE_FILE = "default.yaml"


def load_search(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[JobConfig, SearchSpace]:
    """Read a job YAML (or start from defaults), apply ``key.sub=value`` overrides (a value
    may be a distribution: ``recovery.lr={loguniform: [1e-5, 1e-3]}``), validate both parts."""
    raw: dict[str, Any] = read_yaml(Path(path)) if path is not None else {}
    return build_search(apply_overrides(raw, overrides))


def build_search(raw: dict[str, Any]) -> tuple[JobConfig, SearchSpace]:
    """``load_search`` for a mapping already in memory (a parsed YAML, ``JobConfig.to_dict()``)."""
    fields = ConfigFields()
    fixed, entries, problems = split_search(raw, fields)
    tailored = not entries and not problems
    if tailored:
        chosen = set(leaf_paths(fixed, fields))
        entries = [entry for entry in default_space_entries() if entry.path not in chosen]
    parameters, found = parse_parameters(entries)
    problems += found
    parameters, found = check_field_values(parameters, fields)
    problems += found
    base, found = _validate_fixed(fixed, parameters)
    problems += found
    _raise(problems)
    base_dict = base.to_dict()
    parameters, found = resolve_conditions(parameters, base_dict, fields, drop_unreachable=tailored)
    _raise(found)
    parameters, found = order_parameters(parameters)
    _raise(found)
    fallback = {parameter.name: get_path(base_dict, parameter.name) for parameter in parameters
                if not parameter.is_helper}
    parameters, found = check_combinations(parameters, base_dict, fallback, drop_unreachable=tailored)
    _raise(found)
    space = SearchSpace(tuple(parameters), tuple((name, value) for name, value in fallback.items()
                                                 if name in {parameter.name for parameter in parameters}))
    base_dict["search"]["space"] = space.to_dict()
    _raise([problem for index, settings in enumerate(base.search.enqueue)
            for problem in check_partial_settings(space, settings, f"search.enqueue[{index}]", fields)])
    return validate_config(base_dict), space


def default_space_entries() -> list[Entry]:
    """The shipped default space (``prunetune/spaces/default.yaml``) as written entries."""
    text = resources.files("prunetune.spaces").joinpath(DEFAULT_SPACE_FILE).read_text()
    mapping = yaml.safe_load(text)
    return [Entry(path, spec, f"default space {path}") for path, spec in mapping.items()]


def default_space() -> SearchSpace:
    """The default space as a job with every field at its default searches it."""
    return build_search({})[1]


def _validate_fixed(fixed: dict[str, Any], parameters: list[Parameter]) -> tuple[JobConfig | None, list]:
    try:
        return validate_config(fixed), []
    except ConfigError as error:
        searched = [parameter.name for parameter in parameters]
        problems = []
        for path, message in error.problems:
            inside = [name for name in searched if path and name.startswith(path + ".")]
            if inside:
                # A rule tying fields together fails on the value a searched field holds here.
                message += (f" (in the fixed part, searched fields hold their default or fixed value: "
                            f"{', '.join(inside)}; search tied fields together or fix them together)")
            problems.append((path, message))
        return None, problems


def _raise(problems: list[tuple[str, str]]) -> None:
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
