"""Split a raw job mapping into its fixed part and its distributions.

Distributions come from two places: inline, in place of a field's value
(``pruning: {criterion: {choice: [l1, vbp]}}``), and in ``search.space``, keyed by dotted
path (``search: {space: {recovery.lr: {loguniform: [1e-5, 1e-3]}}}``) or nested
(``search.space.recovery.lr=...`` on the command line nests the keys). The walk follows the
schema, so a mapping is read as a distribution only in place of a leaf field; for fields
whose values are themselves mappings (``model.kwargs``) only a mapping that is exactly a
distribution's shape counts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from prunetune.spaces.distributions import KINDS, is_distribution, kind_keys, parse_distribution
from prunetune.spaces.parameters import HELPER_NAME, is_helper
from prunetune.spaces.schema import ConfigFields, unsearchable

Problems = list[tuple[str, str]]


@dataclass(frozen=True)
class Entry:
    """A distribution as written: the field (or helper) it searches, its mapping, and where."""

    path: str
    spec: dict[str, Any]
    where: str


def split_search(raw: dict[str, Any], fields: ConfigFields) -> tuple[dict[str, Any], list[Entry], Problems]:
    """(raw without distributions and with an empty search.space, the entries, problems)."""
    problems: Problems = []
    inline: list[Entry] = []
    fixed = _walk(copy.deepcopy(raw), "", fields, inline, problems)
    search = fixed.get("search")
    space: Any = {}
    if isinstance(search, dict) and "space" in search:
        space = search.pop("space")
        search["space"] = {}
    listed = _flatten_space(space, fields, problems)
    entries, found = _check_entries(inline + listed, fields)
    return fixed, entries, problems + found


def _walk(node: dict[str, Any], prefix: str, fields: ConfigFields, found: list[Entry], problems: Problems) -> dict:
    kept: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        if path == "search.space":
            kept[key] = value
        elif fields.is_section(path) and isinstance(value, dict):
            if kind_keys(value):
                problems.append((path, f"{path} is a section, not a field: search its fields instead "
                                       f"({', '.join(fields.fields_of(path))})"))
                continue
            kept[key] = _walk(value, f"{path}.", fields, found, problems)
        elif fields.is_leaf(path) and _reads_as_distribution(path, value, fields):
            found.append(Entry(path, value, path))
        elif not fields.is_leaf(path) and not fields.is_section(path) and is_distribution(value):
            problems.append((path, fields.unknown_field_message(path)))
        else:
            kept[key] = value
    return kept


def _reads_as_distribution(path: str, value: Any, fields: ConfigFields) -> bool:
    if fields.takes_mappings(path):
        # model.kwargs: {choice: 3} could be a builder keyword; only a well-formed distribution counts.
        return is_distribution(value) and parse_distribution(value, path)[0] is not None
    return bool(kind_keys(value))


def _flatten_space(space: Any, fields: ConfigFields, problems: Problems, prefix: str = "") -> list[Entry]:
    if not isinstance(space, dict):
        hint = " (leave search.space out to use the default space)" if space == "default" else ""
        problems.append(("search.space", f"must map field paths to distributions, got {space!r}{hint}"))
        return []
    entries: list[Entry] = []
    for key, value in space.items():
        path = f"{prefix}{key}"
        if kind_keys(value):
            entries.append(Entry(path, value, f"search.space.{path}"))
        elif isinstance(value, dict) and value and not is_helper(path):
            entries += _flatten_space(value, fields, problems, f"{path}.")
        else:
            problems.append((f"search.space.{path}", f"expected a distribution (a mapping with one of "
                                                     f"{', '.join(KINDS)}), got {value!r}; fixed values belong "
                                                     "in their section"))
    return entries


def _check_entries(entries: list[Entry], fields: ConfigFields) -> tuple[list[Entry], Problems]:
    """The entries that search a real field (or name a helper) once, and what is wrong with the rest."""
    problems: Problems = []
    first: dict[str, Entry] = {}
    for entry in entries:
        if entry.path in first:
            other = first[entry.path].where
            problems.append((entry.where, f"{entry.path} is searched twice (also at {other}"
                                          f"{' (inline)' if other == entry.path else ''}); keep one"))
        elif is_helper(entry.path) and not HELPER_NAME.match(entry.path):
            problems.append((entry.where, f"helper name {entry.path!r} is not _letters_digits_or_underscores"))
        elif not is_helper(entry.path) and not fields.is_leaf(entry.path):
            problems.append((entry.where, fields.unknown_field_message(entry.path)))
        else:
            first[entry.path] = entry
            # Kept for the value checks after this one, so every problem is raised at once.
            why = unsearchable(entry.path)
            if why is not None:
                problems.append((entry.where, why))
    return list(first.values()), problems

