"""What the job schema allows at a dotted field path, asked one field at a time.

A search space names config fields by dotted path (``recovery.lr``). Checking a value
against one field alone (a pydantic ``TypeAdapter`` of that field) gives the field's own
message and normalised value without tripping the section validators that tie two fields
together (``lr_high`` needs ``lr_high_threshold``); those are checked on whole configs in
``checks``.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from prunetune.config import BASELINE_FIELDS, JobConfig

from prunetune.reference import reference
from prunetune.errors import ConfigError, UnknownNameError

# The one list of fields no trial may vary, by top-level name, and why: every trial prunes
# the one baseline the driver trains (``JobConfig.baseline_hash``) and the driver reads the
# search's own settings once, so a per-trial value would be wrong or do nothing.
_SHARED_BASELINE = (f"{', '.join(BASELINE_FIELDS[:-1])} and {BASELINE_FIELDS[-1]} settings decide the baseline "
                    "every trial shares")
_SEARCH_ITSELF = "search.* and storage.* settings belong to the search itself, not to a trial"
UNSEARCHABLE = {
    **dict.fromkeys(BASELINE_FIELDS, _SHARED_BASELINE),
    "runtime": "runtime.* settings say how trials run (device, precision, threads), not which pruning they try",
    "search": _SEARCH_ITSELF,
    "storage": _SEARCH_ITSELF,
}


def unsearchable(path: str) -> str | None:
    """Why no trial may vary the field at ``path``; None when a trial may."""
    why = UNSEARCHABLE.get(path.split(".")[0])
    if why is None:
        return None
    return f"{why}; {path} cannot be searched (search pruning.*, recovery.* or stop.* settings instead)"


def refuse_unsearchable(names: list[str]) -> None:
    """Raise the message ``load_search`` gives for a searched field no trial may vary, for a
    space built without it (``SearchSpace`` by hand)."""
    problems = [(f"search.space.{name}", why) for name in names if (why := unsearchable(name))]
    if problems:
        raise ConfigError(problems)


class ConfigFields:
    """The leaf fields of ``JobConfig`` by dotted path, with per-field validation."""

    def __init__(self) -> None:
        self.leaves = dict.fromkeys(path for path, *_ in reference())  # an ordered set
        self.sections = {path.rsplit(".", depth)[0] for path in self.leaves for depth in range(1, path.count(".") + 1)}
        self._adapters: dict[str, TypeAdapter] = {}

    def is_leaf(self, path: str) -> bool:
        return path in self.leaves

    def is_section(self, path: str) -> bool:
        return path in self.sections

    def takes_mappings(self, path: str) -> bool:
        """Whether the field's own values may be mappings (``model.kwargs``), so a mapping
        there is a distribution only when its structure is exactly one."""
        annotation = self.field(path).annotation
        return any(typing.get_origin(option) is dict or option is dict for option in _options(annotation))

    def literal_values(self, path: str) -> tuple[Any, ...] | None:
        for option in _options(self.field(path).annotation):
            if typing.get_origin(option) is Literal:
                return typing.get_args(option)
        return None

    def field(self, path: str) -> FieldInfo:
        model: type[BaseModel] = JobConfig
        *sections, leaf = path.split(".")
        for name in sections:
            # A section may be optional (recovery.teacher: TeacherConfig | None).
            model = next(option for option in _options(model.model_fields[name].annotation)
                         if isinstance(option, type) and issubclass(option, BaseModel))
        return model.model_fields[leaf]

    def fields_of(self, section: str) -> list[str]:
        return [path for path in self.leaves if path.rsplit(".", 1)[0] == section]

    def close_matches(self, path: str, extra: tuple[str, ...] = ()) -> list[str]:
        candidates = [*self.leaves, *extra]
        leaf = path.rsplit(".", 1)[-1]
        same_leaf = [candidate for candidate in candidates if candidate.rsplit(".", 1)[-1] == leaf]
        similar = difflib.get_close_matches(path, candidates, n=3, cutoff=0.8)
        return list(dict.fromkeys([*same_leaf, *similar]))[:4]

    def unknown_field_message(self, path: str, extra: tuple[str, ...] = ()) -> str:
        matches = self.close_matches(path, extra)
        if matches:
            return f"{path!r} is not a config field; did you mean {', '.join(matches)}?"
        section = path.rsplit(".", 1)[0] if "." in path else ""
        if self.is_section(section):
            return f"{path!r} is not a config field; fields of {section}: {', '.join(self.fields_of(section))}"
        top = sorted({name.split(".")[0] for name in self.leaves})
        return f"{path!r} is not a config field; top-level fields: {', '.join(top)} (see docs/config-reference.md)"

    def check_value(self, path: str, value: Any) -> tuple[Any, str | None, str | None]:
        """(the value as the config stores it, JSON-style; None and the reason and pydantic's error type)."""
        adapter = self._adapters.get(path)
        if adapter is None:
            info = self.field(path)
            # The field's constraints (ge, pattern, validators) live in its metadata, not its annotation.
            annotation = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
            adapter = self._adapters[path] = TypeAdapter(annotation)
        try:
            return adapter.dump_python(adapter.validate_python(value), mode="json"), None, None
        except ValidationError as error:
            first = error.errors()[0]
            literals = self.literal_values(path)
            if first["type"] == "literal_error" and literals is not None:
                return None, "known: " + ", ".join(str(choice) for choice in literals), first["type"]
            unknown = first.get("ctx", {}).get("error")
            if isinstance(unknown, UnknownNameError):
                return None, "known: " + ", ".join(unknown.known), first["type"]
            where = "item " + ".".join(str(part) for part in first["loc"]) + ": " if first["loc"] else ""
            return None, where + first["msg"].removeprefix("Value error, "), first["type"]


def _options(annotation: Any) -> tuple[Any, ...]:
    # ``X | None`` and ``Optional[X]`` are unions; anything else is its own single option.
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def get_path(data: Mapping[str, Any], path: str, default: Any = None) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *sections, leaf = path.split(".")
    node = data
    for part in sections:
        node = node.setdefault(part, {})
    node[leaf] = value


def leaf_paths(data: Mapping[str, Any], fields: ConfigFields, prefix: str = "") -> list[str]:
    """The config fields a raw (YAML) mapping sets, by dotted path."""
    found: list[str] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if fields.is_section(path) and isinstance(value, Mapping):
            found.extend(leaf_paths(value, fields, f"{path}."))
        elif fields.is_leaf(path):
            found.append(path)
    return found
