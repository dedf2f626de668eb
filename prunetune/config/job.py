"""The typed schema of a pruning job: YAML in, dotted overrides, plain dicts out and back.

Every section is a frozen pydantic model that forbids unknown keys, so a typo is an error
that names the field instead of a silently ignored setting. ``load_config`` is the edge:
it validates once and raises ``ConfigError`` listing each bad field path, the bad value and
what is allowed. Ray passes configs between processes as dicts: ``JobConfig.to_dict`` and
``JobConfig.from_dict`` round-trip losslessly.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from prunetune.config.base import SEED_MAX, Section
from prunetune.config.inputs import (SERVING_ONLY_DATA, TRAINING_ONLY_DATA, UNTRAINED_BASELINE, BaselineConfig,
                                     DataConfig, ModelConfig)
from prunetune.config.pruning import PruningConfig
from prunetune.config.recovery import RecoveryConfig, StopConfig
from prunetune.config.search import LatencyConfig, RuntimeConfig, SearchConfig, StorageConfig
from prunetune.errors import ConfigError, FieldValueError, UserError
from prunetune.user_yaml import DuplicateKeyError, UniqueKeyLoader, read_yaml, yaml_problem

BASELINE_FIELDS = ("seed", "data", "model", "baseline")


class JobConfig(Section):
    name: str = Field("prunetune", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="name of the job / experiment")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="seeds data splits, initialisation, shuffling and the search")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    pruning: PruningConfig = Field(default_factory=PruningConfig)
    recovery: RecoveryConfig = Field(default_factory=RecoveryConfig)
    stop: StopConfig = Field(default_factory=StopConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobConfig:
        return validate_config(data)

    def baseline_settings(self) -> dict[str, Any]:
        """The settings that decide the baseline's weights and measured accuracy (its cache key's
        config part; ``prunetune.baseline.baseline_key`` adds the checkpoint's content).

        Left out: how batches are served (``SERVING_ONLY_DATA``), and for a baseline that is
        not trained (epochs 0) its training recipe and what only training batches see.
        """
        settings = {k: self.to_dict()[k] for k in BASELINE_FIELDS}
        untrained = self.baseline.epochs == 0
        settings["data"] = {k: v for k, v in settings["data"].items()
                            if k not in SERVING_ONLY_DATA and not (untrained and k in TRAINING_ONLY_DATA)}
        if untrained:
            settings["baseline"] = {k: settings["baseline"][k] for k in UNTRAINED_BASELINE}
        return settings


def validate_config(data: Any) -> JobConfig:
    try:
        return JobConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError([_describe(e) for e in error.errors()]) from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> JobConfig:
    """Read YAML (or start from defaults), apply ``key.sub=value`` overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(Path(path))
    return validate_config(apply_overrides(raw, overrides))


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``a.b.c=value`` set; the value is parsed as YAML."""
    result = json.loads(json.dumps(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError([("", f"override {item!r} is not of the form key.sub=value")])
        *parents, leaf = key.strip().split(".")
        node = result
        for depth, part in enumerate(parents):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError([(".".join(parents[: depth + 1]), f"is {child!r}, not a section; cannot set {key}")])
            node = child
        node[leaf] = _override_value(item, text)
    return result


def _override_value(item: str, text: str) -> Any:
    try:
        return yaml.load(text, Loader=UniqueKeyLoader) if text.strip() else None  # noqa: S506 - safe subclass
    except DuplicateKeyError as error:
        raise ConfigError([("", f"override {item!r} is not valid YAML{yaml_problem(error)}")]) from None
    except yaml.YAMLError:
        return text  # not YAML: the plain string, as a shell user means it


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    loc = tuple(error["loc"])
    path = ".".join(str(part) for part in loc)
    if error["type"] == "extra_forbidden":
        known = _fields_at(loc[:-1])
        return path, f"unknown field; allowed fields here: {', '.join(known)}"
    message = error["msg"].removeprefix("Value error, ")
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, FieldValueError):
        return f"{path}.{cause.field}" if path else cause.field, message
    if error["type"] == "value_error" and isinstance(cause, UserError):
        # prunetune's own errors already name the bad value, and some the field too.
        return path, message.removeprefix(f"{path}: ")
    return path, f"{message} (got {error.get('input')!r})"


def section_of(annotation: Any) -> type[BaseModel] | None:
    """The section class of a field typed ``Section`` or ``Section | None``, else None."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: Any = JobConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or section_of(field.annotation) is None:
            return []
        model = section_of(field.annotation)
    return list(model.model_fields)
