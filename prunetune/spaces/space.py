"""A validated search space: an Optuna define-by-run function and the way back to a config.

``SearchSpace`` is built by ``load_search`` (never by hand in normal use), which has already
checked every value it can produce. Ray calls ``define_by_run`` on the driver for every
trial, so it does nothing but ``trial.suggest_*``; Ray then hands the trainable the flat
dict of suggested values (keys are the dotted names: Ray splits keys on ``/`` only), and
``apply`` turns that dict and the job's config into the trial's config.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prunetune.config import JobConfig, validate_config
from prunetune.errors import ConfigError
from prunetune.spaces.parameters import Parameter
from prunetune.spaces.schema import set_path


@dataclass(frozen=True)
class SearchSpace:
    """Parameters in sampling order; ``fixed`` holds each searched field's config value,
    which conditions test when that field's own parameter was not sampled."""

    parameters: tuple[Parameter, ...]
    fixed: tuple[tuple[str, Any], ...] = ()

    def define_by_run(self, trial: Any) -> None:
        """Optuna define-by-run: suggest every parameter whose conditions hold, by dotted name."""
        current = dict(self.fixed)
        for parameter in self.parameters:
            if parameter.active(current):
                suggested = parameter.distribution.suggest(trial, parameter.name)
                current[parameter.name] = parameter.distribution.decode(suggested)
        return None

    def apply(self, config: JobConfig, params: Mapping[str, Any]) -> JobConfig:
        """The trial's config: ``config`` (from ``load_search``) with the sampled values set.

        ``params`` is what ``define_by_run`` suggested (Ray's trial config, or an Optuna
        trial's ``params``); a key that is not a parameter, a missing parameter whose
        conditions hold, or a value its distribution cannot produce is a ``ConfigError``.
        """
        known = {parameter.name for parameter in self.parameters}
        problems = [(key, f"is not a parameter of this search space; parameters: {', '.join(self.names())}")
                    for key in params if key not in known]
        current = dict(self.fixed)
        data = config.to_dict()
        for parameter in self.parameters:
            active, given = parameter.active(current), parameter.name in params
            if active and not given:
                problems.append((parameter.name, "is missing: its conditions hold, so the trial must sample it"))
            elif given and not active:
                conditions = " and ".join(condition.describe() for condition in parameter.when)
                problems.append((parameter.name, f"was given, but it is sampled only when {conditions}"))
            elif given:
                try:
                    value = parameter.distribution.decode(params[parameter.name])
                except ValueError as error:
                    problems.append((parameter.name, str(error)))
                    continue
                current[parameter.name] = value
                if not parameter.is_helper:
                    set_path(data, parameter.name, value)
        if problems:
            raise ConfigError(problems)
        return validate_config(data)

    def names(self) -> list[str]:
        return [parameter.name for parameter in self.parameters]

    def __len__(self) -> int:
        return len(self.parameters)

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self.parameters)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """The ``search.space`` form: dotted name -> distribution mapping (``when`` included)."""
        return {parameter.name: parameter.to_spec() for parameter in self.parameters}

    def describe(self) -> str:
        """A Markdown table of the space: parameter, distribution, condition."""
        lines = ["| parameter | distribution | sampled when |", "| --- | --- | --- |"]
        for parameter in self.parameters:
            name = f"`{parameter.name}`" + (" (helper)" if parameter.is_helper else "")
            when = " and ".join(condition.describe() for condition in parameter.when) or "always"
            lines.append(f"| {name} | {parameter.distribution.describe().replace('|', '/')} | {when} |")
        return "\n".join(lines) + "\n"
