"""Optuna samplers by name: ``search.sampler`` picks one; ``register_sampler`` adds one.

A sampler entry is a function ``(seed, multi_objective) -> optuna.samplers.BaseSampler``.
Optuna is imported inside each entry so that config validation, which checks the name
against this registry, does not load it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from prunetune.registry import SAMPLERS

SamplerFactory = Callable[[int, bool], Any]


def register_sampler(name: str) -> Callable[[SamplerFactory], SamplerFactory]:
    return SAMPLERS.register(name)


def make_sampler(name: str, seed: int, multi_objective: bool):
    return SAMPLERS.get(name, "search.sampler")(seed, multi_objective)


@register_sampler("tpe")
def tpe(seed: int, multi_objective: bool):
    """Multivariate TPE (grouped for conditional spaces), 4 random start-up trials."""
    import optuna

    from prunetune.internals import OPTUNA_GROUP_WARNING

    # Optuna 5 warns that ``group`` is experimental (ExperimentalWarning, since 2.8) each time the
    # sampler is built; it is prunetune's choice, not the user's, so the warning is not theirs to read.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=OPTUNA_GROUP_WARNING,
                                category=optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=4)


@register_sampler("nsga2")
def nsga2(seed: int, multi_objective: bool):
    """NSGA-II, population 8 (multi-objective) or 4."""
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=8 if multi_objective else 4)


@register_sampler("gp")
def gp(seed: int, multi_objective: bool):
    """Gaussian-process Bayesian optimisation."""
    import optuna

    return optuna.samplers.GPSampler(seed=seed)


@register_sampler("random")
def random(seed: int, multi_objective: bool):
    """Uniform random sampling (the baseline to beat)."""
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)
