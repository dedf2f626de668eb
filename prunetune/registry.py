"""Named registries for the pluggable parts (datasets, models, criteria, schedules, repairs).

A registry is a decorator and a dict, as in timm: ``@DATASETS.register("digits")`` on a
function makes it findable by name, and ``DATASETS.get("digits")`` returns it or raises an
error that lists every known name. Registries are filled when the module that defines the
entries is imported; ``Registry.home`` names that module so a lookup (e.g. from config
validation, which sits below the pruning layer) can import it on demand without an import
cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

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
