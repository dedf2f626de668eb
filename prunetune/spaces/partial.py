"""Partial settings of a space (``search.enqueue``): checked against it, and in Optuna's form.

A partial setting maps some of the space's parameters (dotted field paths, or ``_helpers``)
to values; the parameters it leaves out are sampled as usual. Each value must be one its
distribution can produce (a choice among the choices, a number inside the range and on its
step), and a parameter that is sampled only under conditions may be given only where the
setting (or the job's fixed part) does not rule them out: Optuna would otherwise drop the
value without a word and sample the trial from scratch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from prunetune.spaces.distributions import Choice, Distribution, FloatRange, same_value, show
from prunetune.spaces.parameters import Parameter
from prunetune.spaces.schema import ConfigFields
from prunetune.spaces.space import SearchSpace

Problems = list[tuple[str, str]]


def check_partial_settings(space: SearchSpace, settings: Any, where: str, fields: ConfigFields) -> Problems:
    """What is wrong with one partial setting (``where`` names it: ``search.enqueue[0]``); [] when nothing."""
    if not isinstance(settings, Mapping) or not settings:
        return [(where, f"must map searched field paths to values (e.g. {{pruning.criterion: l1}}), got {settings!r}")]
    parameters = {parameter.name: parameter for parameter in space}
    searched = ", ".join(space.names()) or "none"
    problems: Problems = []
    current = dict(space.fixed)
    for path, value in settings.items():
        here = f"{where}.{path}"
        parameter = parameters.get(path)
        if parameter is None:
            known = fields.is_leaf(path) or path.startswith("_")
            problems.append((here, f"{path} is not searched in this space (searched: {searched})" if known
                             else f"{fields.unknown_field_message(str(path))}; searched fields: {searched}"))
            continue
        try:
            current[path] = decode_exactly(parameter.distribution, value)
        except ValueError:
            problems.append((here, f"{show(value)} is not a value of this parameter; allowed: "
                                   f"{parameter.distribution.describe()}"))
    for path in settings:
        parameter = parameters.get(path)
        if parameter is not None and path in current:
            problems += _ruled_out(parameter, current, settings, parameters, f"{where}.{path}")
    return problems


def _ruled_out(parameter: Parameter, current: dict, settings: Mapping, parameters: dict, here: str) -> Problems:
    # A condition on a parameter the setting leaves out is decided by the sampler: not known here.
    decided = [condition for condition in parameter.when if condition.path in current
               and (condition.path in settings or condition.path not in parameters)]
    failed = [condition for condition in decided if not condition.holds(current)]
    if not failed:
        return []
    why = " and ".join(f"{condition.path} is {show(current.get(condition.path))}" for condition in failed)
    needs = " and ".join(condition.describe() for condition in parameter.when)
    return [(here, f"is sampled only when {needs}, but here {why}: Optuna would drop the value; "
                   f"leave {parameter.name} out, or set what its condition needs")]


def decode_exactly(distribution: Distribution, value: Any) -> Any:
    """The value ``distribution`` stands for, if it can produce it exactly (a float range's step included)."""
    decoded = distribution.decode(value)
    if isinstance(distribution, FloatRange) and distribution.step is not None:
        steps = (decoded - distribution.low) / distribution.step
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(f"{value!r} is not on the step of {distribution.describe()}")
    if isinstance(distribution, FloatRange) and not math.isfinite(decoded):
        raise ValueError(f"{value!r} is not finite")
    return decoded


def optuna_params(space: SearchSpace, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A checked partial setting as Optuna's ``enqueue_trial`` takes it (choices by their labels)."""
    parameters = {parameter.name: parameter for parameter in space}
    return {path: optuna_value(parameters[path].distribution, value) for path, value in settings.items()}


def optuna_value(distribution: Distribution, value: Any) -> Any:
    """``value`` as Optuna stores it for ``distribution`` (a choice by its label)."""
    if isinstance(distribution, Choice):
        decoded = distribution.decode(value)
        return next(label for label, choice in zip(distribution.labels, distribution.values)
                    if same_value(choice, decoded))
    return decode_exactly(distribution, value)
