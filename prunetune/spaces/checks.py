"""Every check a search space passes before Ray starts.

In order: each distribution parses; every value it can produce is valid for its field on
its own (choices one by one; ranges at both bounds and an interior point); every condition
names a field or an earlier-sampled choice and values it can take; the conditions are
acyclic; and every *branch* of the space (each combination of the choices that conditions
test, other parameters at their first value) makes a valid whole config, and so does each
value of each other parameter in the first branch that samples it. The last step catches the
rules that tie fields together (``lr_high`` with ``lr_high_threshold``, increasing
``targets``) exactly as ``SearchSpace.apply`` will meet them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from prunetune.config import JobConfig
from prunetune.spaces.distributions import Choice, parse_distribution, same_value, show
from prunetune.spaces.extract import Entry
from prunetune.spaces.parameters import Condition, Parameter, is_helper, parse_conditions
from prunetune.spaces.schema import ConfigFields, get_path

Problems = list[tuple[str, str]]
# Each branch is one whole-config validation (~40 us); past this, a space is better split.
MAX_BRANCHES = 4096


def parse_parameters(entries: list[Entry]) -> tuple[list[Parameter], Problems]:
    parameters, problems = [], []
    for entry in entries:
        distribution, found = parse_distribution(entry.spec, entry.where)
        conditions, found_in_when = parse_conditions(entry.spec, entry.where)
        problems += found + found_in_when
        if distribution is None or found_in_when:
            continue
        if is_helper(entry.path) and not isinstance(distribution, Choice):
            problems.append((entry.where, f"a helper parameter exists for conditions to test, so it is a choice, "
                                          f"not {distribution.kind}"))
            continue
        parameters.append(Parameter(entry.path, distribution, conditions, entry.where))
    return parameters, problems


def check_field_values(parameters: list[Parameter], fields: ConfigFields) -> tuple[list[Parameter], Problems]:
    """Each value a parameter can produce, against its field alone; choices come back normalised."""
    checked, problems = [], []
    for parameter in parameters:
        if parameter.is_helper:
            checked.append(parameter)
            continue
        distribution, normalised, bad = parameter.distribution, [], []
        for value in distribution.check_values():
            stored, reason, error_type = fields.check_value(parameter.name, value)
            normalised.append(stored)
            if reason is not None:
                whole = error_type == "int_from_float"
                hint = f"; {parameter.name} takes whole numbers: use int: [low, high]" if whole else ""
                separator = ";" if reason.startswith("known:") else ":"
                bad.append((parameter.where, f"{_value_label(distribution, value)} is not allowed{separator} "
                                             f"{reason}{hint}"))
        if bad and not isinstance(distribution, Choice):
            # A range's values fail for one reason; the first failing one says it.
            where, message = bad[0]
            bad = [(where, message + (f" (and {len(bad) - 1} more checked values)" if len(bad) > 1 else ""))]
        problems += bad
        if isinstance(distribution, Choice) and not bad:
            repeated = [value for index, value in enumerate(normalised)
                        if any(same_value(value, earlier) for earlier in normalised[:index])]
            if repeated:
                problems.append((parameter.where, f"choice lists {show(repeated[0])} twice (as {parameter.name} "
                                                  "stores it)"))
            distribution = Choice(tuple(normalised))
        checked.append(Parameter(parameter.name, distribution, parameter.when, parameter.where))
    return checked, problems


def _value_label(distribution: Any, value: Any) -> str:
    """'choice value 'l3'', 'uniform upper bound 1.5': which value of the distribution failed."""
    if isinstance(distribution, Choice):
        role = "choice value"
    elif value == distribution.low:
        role = f"{distribution.kind} lower bound"
    elif value == distribution.high:
        role = f"{distribution.kind} upper bound"
    else:
        role = f"{distribution.kind} value"
    return f"{role} {show(value, quote=True)}"


def resolve_conditions(parameters: list[Parameter], base: Mapping[str, Any], fields: ConfigFields,
                       drop_unreachable: bool) -> tuple[list[Parameter], Problems]:
    """Check each condition; settle those on fixed fields now (true: dropped, false: the
    parameter is never sampled, a problem unless ``drop_unreachable``)."""
    while True:
        by_name = {parameter.name: parameter for parameter in parameters}
        resolved, problems, dropped = [], [], False
        for parameter in parameters:
            kept: list[Condition] = []
            never = None
            for condition in parameter.when:
                outcome, found = _check_condition(parameter, condition, by_name, base, fields)
                problems += found
                if outcome is None:
                    kept.append(_normalised(condition, by_name, fields))
                elif outcome is False:
                    never = condition
            if never is not None and drop_unreachable:
                dropped = True
                continue
            if never is not None:
                fixed = show(get_path(base, never.path), quote=True)
                problems.append((f"{parameter.where}.when", f"{never.describe()} never holds: {never.path} is fixed "
                                                            f"at {fixed}, so {parameter.name} would never be sampled"))
            resolved.append(Parameter(parameter.name, parameter.distribution, tuple(kept), parameter.where))
        if drop_unreachable:
            resolved, unused = _without_unused_helpers(resolved)
            dropped = dropped or unused
        else:
            problems += _unused_helper_problems(resolved)
        if problems or not dropped:
            return resolved, problems
        parameters = resolved


def _check_condition(parameter: Parameter, condition: Condition, by_name: dict[str, Parameter],
                     base: Mapping[str, Any], fields: ConfigFields) -> tuple[bool | None, Problems]:
    """(None: tested on a parameter at sampling time; True/False: settled by a fixed field)."""
    where = f"{parameter.where}.when.{condition.path}"
    if condition.path == parameter.name:
        return None, [(where, f"{parameter.name} cannot depend on itself")]
    subject = by_name.get(condition.path)
    if subject is not None:
        if not isinstance(subject.distribution, Choice):
            return None, [(where, f"conditions test choices; {condition.path} is {subject.distribution.kind} "
                                  "(make it a choice, or condition on a helper choice)")]
        possible = list(subject.distribution.values)
        if subject.when and not subject.is_helper:
            possible.append(get_path(base, subject.name))  # its fixed value, when it is not sampled
        problems = []
        for value in condition.values:
            stored, reason = value, None
            if not subject.is_helper:
                stored, reason, _ = fields.check_value(condition.path, value)
            if reason is not None:
                problems.append((where, f"{show(value, quote=True)} is not a value {condition.path} can take; "
                                        f"{reason}"))
            elif not any(same_value(stored, choice) for choice in possible):
                problems.append((where, f"{show(value, quote=True)} never holds: {condition.path} takes "
                                        f"{', '.join(show(choice) for choice in possible)}"))
        return None, problems
    if is_helper(condition.path):
        helpers = [name for name in by_name if is_helper(name)] or ["none"]
        return None, [(where, f"no helper parameter {condition.path}; helpers: {', '.join(helpers)}")]
    if not fields.is_leaf(condition.path):
        return None, [(where, fields.unknown_field_message(condition.path, tuple(by_name)))]
    problems = []
    for value in condition.values:
        _, reason, _ = fields.check_value(condition.path, value)
        if reason is not None:
            problems.append((where, f"{show(value, quote=True)} is not a value {condition.path} can take; {reason}"))
    if problems:
        return None, problems
    fixed = get_path(base, condition.path)
    return any(same_value(fixed, fields.check_value(condition.path, value)[0]) for value in condition.values), []


def _normalised(condition: Condition, by_name: dict[str, Parameter], fields: ConfigFields) -> Condition:
    if is_helper(condition.path) or not fields.is_leaf(condition.path):
        return condition
    values = tuple(fields.check_value(condition.path, value)[0] for value in condition.values)
    return Condition(condition.path, values)


def _without_unused_helpers(parameters: list[Parameter]) -> tuple[list[Parameter], bool]:
    tested = {condition.path for parameter in parameters for condition in parameter.when}
    kept = [parameter for parameter in parameters if not parameter.is_helper or parameter.name in tested]
    return kept, len(kept) != len(parameters)


def _unused_helper_problems(parameters: list[Parameter]) -> Problems:
    tested = {condition.path for parameter in parameters for condition in parameter.when}
    return [(parameter.where, f"helper {parameter.name} is tested by no condition; remove it or add "
                              f"when: {{{parameter.name}: ...}} to the parameters it decides")
            for parameter in parameters if parameter.is_helper and parameter.name not in tested]


def order_parameters(parameters: list[Parameter]) -> tuple[list[Parameter], Problems]:
    """Written order, except that a parameter comes after every parameter its conditions test."""
    names = {parameter.name for parameter in parameters}
    placed: list[Parameter] = []
    waiting = list(parameters)
    while waiting:
        done = {parameter.name for parameter in placed}
        ready = next((parameter for parameter in waiting
                      if all(c.path in done or c.path not in names for c in parameter.when)), None)
        if ready is None:
            cycle = ", ".join(parameter.name for parameter in waiting)
            return placed, [(waiting[0].where + ".when", f"conditions form a cycle among {cycle}; "
                                                         "each must depend only on parameters sampled before it")]
        placed.append(ready)
        waiting.remove(ready)
    return placed, []


def check_combinations(parameters: list[Parameter], base: dict[str, Any], fallback: dict[str, Any],
                       drop_unreachable: bool) -> tuple[list[Parameter], Problems]:
    """Validate whole configs branch by branch; drop (or report) parameters no branch samples."""
    branches, problems = _branches(parameters, fallback)
    if problems:
        return parameters, problems
    cache: dict[str, Problems] = {}
    gating = {condition.path for parameter in parameters for condition in parameter.when}
    for assignment in branches:
        for path, message in _config_problems(base, assignment, cache):
            sampled = ", ".join(f"{name}={show(value)}" for name, value in assignment.items()
                                if name in gating or name.startswith(path.split(".")[0]))
            problems.append((path, f"{message} (when the search samples {sampled})"))
    if problems:
        return parameters, list(dict.fromkeys(problems))
    reachable = {name for assignment in branches for name in assignment}
    kept = []
    for parameter in parameters:
        if parameter.name not in reachable:
            if not drop_unreachable:
                problems.append((parameter.where + ".when", f"{parameter.name} is never sampled: its conditions "
                                                            "cannot hold together"))
            continue
        kept.append(parameter)
        if parameter.name in gating:
            # Every value of a choice a condition tests has a branch of its own, checked above; put
            # into another value's branch it would keep that branch's dependents on (tkp.alpha,
            # sampled for reg_type exponential only, alongside reg_type l2).
            continue
        first = next(assignment for assignment in branches if parameter.name in assignment)
        for value in parameter.distribution.check_values():
            for path, message in _config_problems(base, {**first, parameter.name: value}, cache):
                problems.append((parameter.where, f"{_value_label(parameter.distribution, value)} makes the config "
                                                  f"invalid: {path}: {message}"))
    return kept, problems


def _branches(parameters: list[Parameter], fallback: dict[str, Any]) -> tuple[list[dict[str, Any]], Problems]:
    gating = {condition.path for parameter in parameters for condition in parameter.when}
    branches: list[dict[str, Any]] = []

    def walk(index: int, current: dict[str, Any], assignment: dict[str, Any]) -> None:
        if len(branches) > MAX_BRANCHES:
            return
        if index == len(parameters):
            branches.append(assignment)
            return
        parameter = parameters[index]
        if not parameter.active(current):
            walk(index + 1, current, assignment)
            return
        values = parameter.distribution.check_values()
        for value in values if parameter.name in gating else values[:1]:
            walk(index + 1, {**current, parameter.name: value}, {**assignment, parameter.name: value})

    walk(0, dict(fallback), {})
    if len(branches) > MAX_BRANCHES:
        return [], [("search.space", f"the conditions branch into more than {MAX_BRANCHES} combinations of choices, "
                                     "each checked before the search starts; condition on fewer or smaller choices")]
    return branches, []


def _config_problems(base: dict[str, Any], assignment: dict[str, Any], cache: dict[str, Problems]) -> Problems:
    fields = {name: value for name, value in assignment.items() if not is_helper(name)}
    key = json.dumps(fields, sort_keys=True)
    if key not in cache:
        try:
            JobConfig.model_validate(_replaced(base, fields))
            cache[key] = []
        except ValidationError as error:
            cache[key] = [(".".join(str(part) for part in found["loc"]), found["msg"].removeprefix("Value error, "))
                          for found in error.errors()]
    return cache[key]


def _replaced(data: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with ``values`` set by dotted path, copying only the sections on the way."""
    result = dict(data)
    for path, value in values.items():
        *sections, leaf = path.split(".")
        node = result
        for part in sections:
            node[part] = dict(node[part])
            node = node[part]
        node[leaf] = value
    return result
