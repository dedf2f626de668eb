"""Named registries for every pluggable part, and the one place each kind is declared.

A registry is a decorator and a dict, as in timm: ``@CRITERIA.register("vbp")`` on a class
or function makes it findable by name, and ``CRITERIA.get("vbp")`` returns it or raises an
error that lists every known name. The registries are declared here, in a module that
imports nothing heavy, so config validation, ``prunetune list`` and the config reference
read the names from the registry itself; the entries are filled when the module named by
``Registry.home`` is imported, which a lookup does on demand (no import cycle, and no
torch import for a config that is never validated).

Adding a plugin is one decorated definition, inside or outside the package: see
docs/plugins.md.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from prunetune.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, home: str) -> None:
        self.kind = kind
        self.home = home
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return decorator

    def remove(self, name: str) -> None:
        """Forget ``name`` (a plugin registered for a while, e.g. by a test)."""
        self._entries.pop(name, None)

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self.home)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str, field: str | None = None) -> T:
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names(), field) from None

    def describe(self, name: str) -> str:
        """The first line of the entry's own description (its ``description`` or docstring)."""
        entry: Any = self.get(name)
        # A class's own docstring only: an undocumented subclass would show its base's.
        own = entry.__dict__.get("__doc__") if isinstance(entry, type) else getattr(entry, "__doc__", None)
        text = getattr(entry, "description", None) or (inspect.cleandoc(own) if own else "")
        return text.strip().splitlines()[0] if text.strip() else ""


def import_callable(spec: str, field: str, error: type[Exception]) -> Callable[..., Any]:
    """The callable a ``package.module:callable`` setting names; ``error`` (naming ``field``) if
    the module does not import or has no such callable."""
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as problem:
        raise error(f"{field}: cannot import {module_name!r} from {spec!r}: {problem}") from None
    found = getattr(module, attribute, None)
    if not callable(found):
        raise error(f"{field}: {module_name!r} has no callable {attribute!r}")
    return found


DATASETS: Registry[Any] = Registry("dataset", home="prunetune.data")
MODELS: Registry[Any] = Registry("model", home="prunetune.models.zoo")
SCOPES: Registry[Any] = Registry("scope", home="prunetune.pruning.scope")
CRITERIA: Registry[Any] = Registry("criterion", home="prunetune.pruning.criteria")
REDUCTIONS: Registry[Any] = Registry("group reduction", home="prunetune.pruning.criteria")
SCHEDULES: Registry[Any] = Registry("schedule", home="prunetune.pruning.schedules")
REPAIRS: Registry[Any] = Registry("repair", home="prunetune.pruning.repair")
OPTIMIZERS: Registry[Any] = Registry("optimizer", home="prunetune.training")
LR_SCHEDULES: Registry[Any] = Registry("lr schedule", home="prunetune.training")
OBJECTIVES: Registry[Any] = Registry("objective", home="prunetune.objectives")
SAMPLERS: Registry[Any] = Registry("sampler", home="prunetune.samplers")
SCHEDULERS: Registry[Any] = Registry("scheduler", home="prunetune.schedulers")

# What `prunetune list KIND` knows, by the plural a user types.
LISTED: dict[str, Registry[Any]] = {
    "datasets": DATASETS, "models": MODELS, "scopes": SCOPES, "criteria": CRITERIA, "reductions": REDUCTIONS,
    "schedules": SCHEDULES, "repairs": REPAIRS, "optimizers": OPTIMIZERS, "lr-schedules": LR_SCHEDULES,
    "objectives": OBJECTIVES, "samplers": SAMPLERS, "schedulers": SCHEDULERS,
}
