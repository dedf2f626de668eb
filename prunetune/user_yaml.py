"""YAML a user wrote (a job file, an override's value), read more strictly than PyYAML does.

PyYAML keeps the last of two equal keys and drops the first without a word, so a second
``recovery:`` block silently replaces the first; here a key given twice is an error naming
its line. A file must be UTF-8 text. Every error is one line naming the file, the line and
the column, not PyYAML's four to eight lines of context.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from prunetune.errors import ConfigError

MERGE_TAG = "tag:yaml.org,2002:merge"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
# YAML types with no JSON counterpart: a config value is a number, string, boolean, null,
# list or mapping (Ray and the results store pass configs on as JSON).
NOT_JSON_TAGS = ("binary", "set", "omap", "pairs", "timestamp")


class DuplicateKeyError(ConstructorError):
    pass


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a mapping holding one key twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Checked before the merge keys (<<) are flattened in: a key that overrides a merged
        # one is YAML's way of saying "like that mapping, but", not a duplicate.
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value if isinstance(node, yaml.MappingNode) else ():
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in first_line
            except TypeError:
                continue  # an unhashable key: the base class reports it
            if repeated:
                raise DuplicateKeyError("while constructing a mapping", node.start_mark,
                                        f"key {key!r} is given twice (first on line {first_line[key] + 1})",
                                        key_node.start_mark)
            first_line[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)

    def refuse_type(self, node: yaml.Node) -> None:
        raise ConstructorError(None, None, f"a {node.tag.rsplit(':', 1)[-1]} value has no place in a config (use a "
                               "number, string, boolean, null, list or mapping)", node.start_mark)


# A date (name: 2024-05-01) is the text it looks like, as in JSON, not a datetime.date.
UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _name in NOT_JSON_TAGS:
    UniqueKeyLoader.add_constructor(f"tag:yaml.org,2002:{_name}", UniqueKeyLoader.refuse_type)


def parse_yaml(text: str, source: str) -> Any:
    """The value ``text`` holds; ``source`` ("config file 'job.yaml'") starts the error message."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError([("", f"{source} is not valid YAML{yaml_problem(error)}")]) from None


def yaml_problem(error: yaml.YAMLError) -> str:
    """' at line L, column C: what is wrong' from a PyYAML error (its first line when unmarked)."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"{where}: {error.problem or error.context}"
    return f": {str(error).splitlines()[0]}"


def read_yaml(path: Path) -> dict[str, Any]:
    """A job file's mapping; a missing, unreadable, non-UTF-8 or malformed file is a ``ConfigError``."""
    source = f"config file {str(path)!r}"
    if not path.is_file():
        raise ConfigError([("", f"{source} {'is not a file' if path.exists() else 'does not exist'}")])
    try:
        text = path.read_bytes().decode("utf-8-sig")  # -sig: a byte-order mark some editors write
    except UnicodeDecodeError as error:
        raise ConfigError([("", f"{source} is not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
                                f"{error.start}); save it as UTF-8")]) from None
    except OSError as error:
        raise ConfigError([("", f"{source} cannot be read: {error.strerror}")]) from None
    raw = parse_yaml(text, source)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError([("", f"{source} must hold a mapping, not {type(raw).__name__}")])
    return raw
