"""The distributions a search space can put on a field, parsed from their YAML form.

A distribution is a mapping with exactly one kind key:

    choice: [values]                 any values, lists and mappings included
    uniform: [low, high]             float
    loguniform: [low, high]          float, sampled on a log scale (low > 0)
    int: [low, high]                 optional step (default 1) or log: true
    float: [low, high]               optional step (quantised) or log: true

``when`` (conditions) is read by ``parameters``; this module knows only the kinds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

KINDS = ("choice", "uniform", "loguniform", "int", "float")
OPTIONS = {"choice": (), "uniform": (), "loguniform": (), "int": ("step", "log"), "float": ("step", "log")}
CONDITION_KEY = "when"
# Enough grid points to check each one against the field; longer grids check both ends and a middle.
EXHAUSTIVE_CHECK = 50


def kind_keys(value: Any) -> list[str]:
    return [key for key in value if key in KINDS] if isinstance(value, dict) else []


def is_distribution(value: Any) -> bool:
    """A mapping with exactly one kind key, and only that kind's options besides it."""
    keys = kind_keys(value)
    if len(keys) != 1:
        return False
    allowed = {keys[0], *OPTIONS[keys[0]], CONDITION_KEY}
    return set(value) <= allowed


def _label(value: Any) -> Any:
    # Optuna stores only None, bool, int, float and str choices; anything else goes by its JSON text.
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def show(value: Any, quote: bool = False) -> str:
    """A value as YAML would show it; ``quote`` marks strings, as error messages do."""
    if isinstance(value, str):
        return repr(value) if quote else value
    return json.dumps(value)


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]
    labels: tuple[Any, ...] = field(init=False, repr=False)
    kind: ClassVar[str] = "choice"

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(_label(value) for value in self.values))

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, self.labels)

    def decode(self, suggested: Any) -> Any:
        """The choice a suggested label stands for (a choice itself is accepted too)."""
        for label, value in zip(self.labels, self.values):
            if same_value(suggested, label) or same_value(suggested, value):
                return value
        raise ValueError(f"{suggested!r} is not one of the choices {self.describe()}")

    def check_values(self) -> tuple[Any, ...]:
        return self.values

    def to_spec(self) -> dict[str, Any]:
        return {"choice": list(self.values)}

    def describe(self) -> str:
        return "choice: " + ", ".join(show(value) for value in self.values)


def same_value(a: Any, b: Any) -> bool:
    """Equality of config values where True is not 1 (Python says it is) and a tuple equals its list."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


@dataclass(frozen=True)
class FloatRange:
    kind: str  # uniform, loguniform or float: kept so the space is written back as it was read
    low: float
    high: float
    step: float | None = None
    log: bool = False

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def decode(self, suggested: Any) -> float:
        tolerance = 1e-9 * max(1.0, abs(self.high))
        if isinstance(suggested, bool) or not isinstance(suggested, (int, float)) or not (
            self.low - tolerance <= suggested <= self.high + tolerance
        ):
            raise ValueError(f"{suggested!r} is outside {self.describe()}")
        return float(suggested)

    def check_values(self) -> tuple[float, ...]:
        if self.step is not None:
            count = round((self.high - self.low) / self.step) + 1
            if count <= EXHAUSTIVE_CHECK:
                return tuple(self.low + index * self.step for index in range(count))
            return (self.low, self.high, self.low + (count // 2) * self.step)
        # An interior point that is not a whole number catches a float range put on an int field.
        fraction = 0.382
        if self.log:
            interior = math.exp(math.log(self.low) + fraction * (math.log(self.high) - math.log(self.low)))
        else:
            interior = self.low + fraction * (self.high - self.low)
        return (self.low, self.high, interior)

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {self.kind: [self.low, self.high]}
        if self.kind == "float" and self.step is not None:
            spec["step"] = self.step
        if self.kind == "float" and self.log:
            spec["log"] = True
        return spec

    def describe(self) -> str:
        extra = f" step {self.step:g}" if self.kind == "float" and self.step is not None else ""
        extra += " log" if self.kind == "float" and self.log else ""
        return f"{self.kind} [{self.low:g}, {self.high:g}]{extra}"


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    step: int = 1
    log: bool = False
    kind: ClassVar[str] = "int"

    def suggest(self, trial: Any, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, step=self.step, log=self.log)

    def decode(self, suggested: Any) -> int:
        if isinstance(suggested, bool) or not isinstance(suggested, int) or not (
            self.low <= suggested <= self.high and (suggested - self.low) % self.step == 0
        ):
            raise ValueError(f"{suggested!r} is not a value of {self.describe()}")
        return suggested

    def check_values(self) -> tuple[int, ...]:
        values = range(self.low, self.high + 1, self.step)
        if len(values) <= EXHAUSTIVE_CHECK:
            return tuple(values)
        return (self.low, self.high, values[len(values) // 2])

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"int": [self.low, self.high]}
        if self.step != 1:
            spec["step"] = self.step
        if self.log:
            spec["log"] = True
        return spec

    def describe(self) -> str:
        return f"int [{self.low}, {self.high}]" + (f" step {self.step}" if self.step != 1 else "") + (
            " log" if self.log else ""
        )


Distribution = Choice | FloatRange | IntRange


def parse_distribution(spec: dict[str, Any], where: str) -> tuple[Distribution | None, list[tuple[str, str]]]:
    """The distribution a mapping describes (``when`` ignored), or None and what is wrong."""
    kinds = kind_keys(spec)
    if len(kinds) != 1:
        found = f"found {', '.join(kinds)}" if kinds else f"found keys {', '.join(map(str, spec))}"
        return None, [(where, f"a distribution has exactly one of {', '.join(KINDS)}; {found}")]
    kind = kinds[0]
    extra = [key for key in spec if key not in {kind, *OPTIONS[kind], CONDITION_KEY}]
    if extra:
        allowed = ", ".join([*OPTIONS[kind], CONDITION_KEY])
        return None, [(where, f"unknown key {extra[0]!r} in a {kind} distribution; allowed besides {kind}: {allowed}")]
    if kind == "choice":
        return _parse_choice(spec["choice"], where)
    return _parse_range(kind, spec, where)


def _parse_choice(values: Any, where: str) -> tuple[Distribution | None, list[tuple[str, str]]]:
    if not isinstance(values, list) or not values:
        return None, [(where, f"choice needs a non-empty list of values, got {values!r}")]
    seen: set[str] = set()
    for value in values:
        bad = non_finite(value)
        if bad is not None:
            # JSON, Optuna's storage and the results store have no inf or nan (.inf came back as null).
            return None, [(where, f"choice values must be finite numbers, got {bad!r} in {values!r}")]
        text = json.dumps(_label(value), sort_keys=True)
        if text in seen:
            return None, [(where, f"choice lists {show(value)} twice")]
        seen.add(text)
    return Choice(tuple(values)), []


def non_finite(value: Any) -> float | None:
    """The first inf or nan in a value (lists and mappings searched), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    return next((bad for bad in map(non_finite, items) if bad is not None), None)


def _parse_range(kind: str, spec: dict[str, Any], where: str) -> tuple[Distribution | None, list[tuple[str, str]]]:
    bounds = spec[kind]
    if not isinstance(bounds, list) or len(bounds) != 2:
        return None, [(where, f"{kind} needs [low, high], got {bounds!r}")]
    low, high = (_number(bound) for bound in bounds)
    if low is None or high is None:
        return None, [(where, f"{kind} bounds must be finite numbers, got {bounds!r}")]
    if not low < high:
        return None, [(where, f"{kind} needs low < high, got [{low:g}, {high:g}]")]
    log = spec.get("log", kind == "loguniform")
    if not isinstance(log, bool):
        return None, [(where, f"log must be true or false, got {log!r}")]
    if log and low <= 0:
        return None, [(where, f"{kind}{' with log' if kind != 'loguniform' else ''} needs low > 0, got {low:g}")]
    step = spec.get("step")
    if step is not None and log:
        return None, [(where, f"{kind} takes step or log: true, not both")]
    if kind == "int":
        return _int_range(low, high, 1 if step is None else step, log, where)
    if step is not None:
        step = _number(step)
        if step is None or step <= 0:
            return None, [(where, f"step must be a number > 0, got {spec['step']!r}")]
        steps = (high - low) / step
        if abs(steps - round(steps)) > 1e-9 * max(1.0, steps):
            below, above = low + math.floor(steps) * step, low + math.ceil(steps) * step
            return None, [(where, f"float [{low:g}, {high:g}] is not a whole number of steps of {step:g}; "
                                  f"end it at {below:g} or {above:g}")]
    return FloatRange(kind, low, high, step, log), []


def _int_range(low: float, high: float, step: Any, log: bool, where: str) -> tuple[Distribution | None, list]:
    step_number = _number(step)
    if not (low.is_integer() and high.is_integer()):
        return None, [(where, f"int needs whole-number bounds, got [{low:g}, {high:g}]")]
    if step_number is None or not step_number.is_integer() or step_number < 1:
        return None, [(where, f"int step must be a whole number >= 1, got {step!r}")]
    low_int, high_int, step_int = int(low), int(high), int(step_number)
    if (high_int - low_int) % step_int:
        below = high_int - (high_int - low_int) % step_int
        return None, [(where, f"int [{low_int}, {high_int}] is not a whole number of steps of {step_int}; "
                              f"end it at {below} or {below + step_int}")]
    return IntRange(low_int, high_int, step_int, log), []


def _number(value: Any) -> float | None:
    # PyYAML reads 1e-5 (no dot) as a string, so numeric strings count as numbers.
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
