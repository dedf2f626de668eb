"""One searched parameter: a name, its distribution and the conditions under which it is sampled.

A parameter's name is the dotted path of the config field it sets (``recovery.lr``), or,
for a *helper*, a name starting with ``_`` (``_lr_high``): a choice that is sampled only so
that conditions can test it, and never written into the config. Config fields cannot start
with ``_`` (pydantic keeps such names private), so the two never clash. Helpers exist for
fields that must be set together: ``recovery.lr_high`` and ``recovery.lr_high_threshold``
both conditioned on one helper are sampled together or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prunetune.spaces.distributions import CONDITION_KEY, Distribution, same_value, show

HELPER_NAME = re.compile(r"^_[A-Za-z][A-Za-z0-9_]*$")


def is_helper(name: str) -> bool:
    return name.startswith("_")


@dataclass(frozen=True)
class Condition:
    """Holds when the value of ``path`` (sampled, or fixed in the config) is one of ``values``."""

    path: str
    values: tuple[Any, ...]

    def holds(self, current: Mapping[str, Any]) -> bool:
        return self.path in current and any(same_value(current[self.path], value) for value in self.values)

    def to_spec(self) -> Any:
        # One value is written bare, unless it is itself a list (a list means "any of").
        only = self.values[0]
        return only if len(self.values) == 1 and not isinstance(only, list) else list(self.values)

    def describe(self) -> str:
        if len(self.values) == 1:
            return f"{self.path} = {show(self.values[0])}"
        return f"{self.path} in {{{', '.join(show(value) for value in self.values)}}}"


@dataclass(frozen=True)
class Parameter:
    name: str
    distribution: Distribution
    when: tuple[Condition, ...] = ()
    # Where the user wrote it (``search.space.recovery.lr``), for messages; not part of the space.
    where: str = field(default="", compare=False)

    @property
    def is_helper(self) -> bool:
        return is_helper(self.name)

    def active(self, current: Mapping[str, Any]) -> bool:
        return all(condition.holds(current) for condition in self.when)

    def to_spec(self) -> dict[str, Any]:
        spec = self.distribution.to_spec()
        if self.when:
            spec[CONDITION_KEY] = {condition.path: condition.to_spec() for condition in self.when}
        return spec


def parse_conditions(spec: Mapping[str, Any], where: str) -> tuple[tuple[Condition, ...], list[tuple[str, str]]]:
    """The ``when`` mapping of a distribution: path -> value, or a list of allowed values."""
    if CONDITION_KEY not in spec:
        return (), []
    raw = spec[CONDITION_KEY]
    here = f"{where}.{CONDITION_KEY}"
    if not isinstance(raw, dict) or not raw:
        return (), [(here, f"must map field paths (or _helpers) to a value or a list of values, got {raw!r}")]
    conditions = []
    for path, values in raw.items():
        if not isinstance(path, str):
            return (), [(here, f"condition keys are dotted field paths, got {path!r}")]
        allowed = tuple(values) if isinstance(values, list) else (values,)
        if not allowed:
            return (), [(f"{here}.{path}", "an empty list of values never holds")]
        conditions.append(Condition(path, allowed))
    return tuple(conditions), []
