"""``--warm-start OTHER``: another search's finished trials, told to a new study before its first proposal.

Only a search of the same baseline is taken (``baseline.baseline_key``: the seed, data,
model, baseline settings and the checkpoint's content): accuracy and MACs of another
baseline measure another model. Each finished trial of OTHER (its own: not those OTHER was
itself warm-started with) is added to the new study as a finished Optuna trial:

- its params are the new space's parameters, read from the trial's resolved config (so a
  field OTHER held fixed counts as the setting it ran with); a parameter OTHER's trial
  cannot give (a helper it did not have) is left out, and a trial whose settings fall
  outside the new space's distributions is skipped;
- its values are computed with the new search's objective from OTHER's stored rows, as the
  new search's trainable computes them from its own (best feasible step by the new cost,
  ``front_area`` over the rows so far); a trial measured against another accuracy
  threshold is skipped: feasibility, and where the trial stopped cutting, depend on it;
- a trial a cost rung stopped stays PRUNED (stopped_by kept), one without a feasible step
  is PRUNED, as the new search tells its own.

The rows stay in OTHER's store: the new search's front (``prunetune pareto NEW``) is its
own, and ``prunetune pareto OTHER NEW`` joins them.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from prunetune.baseline import baseline_key
from prunetune.config import JobConfig, validate_config
from prunetune.errors import ConfigError, UserError
from prunetune.home import DEFAULT_STORAGE, SearchHome, absolute_root, open_home
from prunetune.objectives import OBJECTIVES, Objective
from prunetune.pipeline.rows import cheaper, ranked_by
from prunetune.pipeline.run import accuracy_threshold
from prunetune.results.experiment import load
from prunetune.results.store import config_columns
from prunetune.spaces.partial import decode_exactly, optuna_value
from prunetune.spaces.schema import get_path, set_path
from prunetune.study import STOPPED_BY, WARM_START, open_study, own_trials, study_storage

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
OUTSIDE = "its settings are outside this space"
THRESHOLD = "it was measured against another accuracy threshold"
NO_LATENCY = "its steps have no measured latency"
NO_ROWS = "its rows are not in the results store"
TRIAL_SECTIONS = ("pruning", "recovery", "stop")  # what a trial's settings are; the rest is the baseline's or the search's


@dataclass(frozen=True)
class WarmStart:
    source: str  # the other search's name
    storage: str  # the root it lives under
    trials: tuple[FrozenTrial, ...]  # ready for Study.add_trials
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> trials
    # Fixed fields of the new job (not searched) that some added trial ran with another value.
    differing: tuple[str, ...] = ()

    def describe(self) -> str:
        states = Counter(t.state for t in self.trials)
        added = (f"warm start from {self.source}: {len(self.trials)} trial{'' if len(self.trials) == 1 else 's'} "
                 f"added ({states[TrialState.COMPLETE]} with a feasible step, {states[TrialState.PRUNED]} without "
                 f"or stopped at a rung)")
        reasons = "; ".join(f"{reason}: {count}" for reason, count in self.skipped.items())
        line = f"{added}, {sum(self.skipped.values())} skipped" + (f" ({reasons})" if reasons else "")
        if self.differing:
            line += (f"; note: they ran with other values of {', '.join(self.differing)}, which this search "
                     "holds fixed (the sampler takes their values as a prior)")
        return line

    def record(self) -> dict:
        """What search.json keeps of it."""
        return {"search": self.source, "storage": self.storage, "added": len(self.trials), "skipped": self.skipped}


def find_other(other: str, storage: str | None, config: JobConfig) -> SearchHome:
    """OTHER as ``prunetune resume`` finds it: under ``storage``; without, under this search's root, then
    ./runs and the index of searches."""
    if storage is not None or absolute_root(config.storage.root) == absolute_root(DEFAULT_STORAGE):
        return open_home(other, storage)
    try:
        return open_home(other, config.storage.root)
    except UserError:
        return open_home(other, None)


def read_warm_start(other: str, storage: str | None, config: JobConfig, space, name: str) -> WarmStart:
    """OTHER's finished trials as trials of the new search ``name`` (``config``, ``space``); a ``UserError``
    when OTHER cannot be found or pruned another baseline."""
    saved = find_other(other, storage, config)
    theirs, ours = saved.baseline_key(), baseline_key(config)
    if theirs != ours:
        raise UserError(f"--warm-start {other}: {saved.describe_baseline()}, but {name} prunes baseline {ours} "
                        f"(its seed, data, model, baseline settings or checkpoint differ); a warm start needs the "
                        f"same baseline: start {name} on {other}'s job, or leave --warm-start out")
    objective = OBJECTIVES.get(config.search.objectives)
    study = open_study(study_storage(saved.job.storage.study_url, saved.home), saved.name,
                       OBJECTIVES.get(saved.job.search.objectives))
    rows = load(saved.home)
    trials, skipped, differing = [], Counter(), set()
    for frozen in own_trials(study, FINISHED):
        trial_rows = rows[rows["trial"] == frozen.number].sort_values("step") if not rows.empty else rows
        ran = saved.space.apply(saved.job, dict(frozen.params))
        made = _as_new_trial(frozen, trial_rows, saved.name, ran, config, space, objective)
        if isinstance(made, str):
            skipped[made] += 1
        else:
            trials.append(made)
            differing |= _fixed_differences(ran, config, space)
    return WarmStart(saved.name, saved.storage, tuple(trials), dict(skipped), tuple(sorted(differing)))


def _fixed_differences(ran: JobConfig, config: JobConfig, space) -> set[str]:
    """The trial-level fields (pruning, recovery, stop) the new job fixes and the trial ``ran`` otherwise."""
    theirs, ours, searched = config_columns(ran), config_columns(config), set(space.names())
    return {column.removeprefix("config.") for column, value in ours.items()
            if column.split(".")[1] in TRIAL_SECTIONS and column.removeprefix("config.") not in searched
            and theirs.get(column) != value}


def _as_new_trial(frozen: FrozenTrial, rows: pd.DataFrame, source: str, ran: JobConfig, config: JobConfig, space,
                  objective: Objective) -> FrozenTrial | str:
    """OTHER's trial ``frozen`` (which ran with the config ``ran``) as a finished trial of the new study, or why
    it is skipped."""
    if rows.empty:
        return NO_ROWS
    records = rows.to_dict("records")
    params = _params_in(space, dict(frozen.params), ran.to_dict())
    if params is None:
        return OUTSIDE
    if not abs(_threshold(config, params, records[0]["baseline_accuracy"]) - records[0]["threshold"]) <= 1e-9:
        return THRESHOLD
    steps = _with_best(records, objective.cost)
    values = [objective.values(row, steps[:index]) for index, row in enumerate(steps)]
    final = [values[-1][metric] for metric in objective.metrics]
    if objective.measures_latency and any(row["feasible"] and pd.isna(row["latency_ms"]) for row in steps):
        return NO_LATENCY
    stopped = frozen.user_attrs.get(STOPPED_BY)
    complete = not stopped and all(value is not None for value in final)
    trial = optuna.trial.FixedTrial(params)
    for parameter in space:
        if parameter.name in params:
            parameter.distribution.suggest(trial, parameter.name)
    intermediate = {} if objective.multi else {int(row["step"]): value[objective.metrics[0]]
                                               for row, value in zip(steps, values)
                                               if value[objective.metrics[0]] is not None}
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE if complete else TrialState.PRUNED, values=final if complete else None,
        params=trial.params, distributions=trial.distributions, intermediate_values=intermediate,
        user_attrs={WARM_START: source, "warm_start_trial": frozen.number,
                    **({STOPPED_BY: stopped} if stopped else {})})


def _params_in(space, settings: dict, resolved: dict) -> dict | None:
    """The new space's parameters (Optuna's form) for a trial that ran with ``resolved``; None if one is outside."""
    current, params = dict(space.fixed), {}
    for parameter in space:
        if not parameter.active(current):
            continue
        value = settings.get(parameter.name) if parameter.is_helper else get_path(resolved, parameter.name)
        if parameter.is_helper and parameter.name not in settings:
            continue  # a helper OTHER did not have: the sampler fills it in for its own trials only
        try:
            current[parameter.name] = decode_exactly(parameter.distribution, value)
        except ValueError:
            return None
        params[parameter.name] = optuna_value(parameter.distribution, value)
    return params


def _threshold(config: JobConfig, params: dict, baseline_accuracy: float) -> float:
    searched_stop = {name: value for name, value in params.items() if name.startswith("stop.")}
    if not searched_stop:
        return accuracy_threshold(config, baseline_accuracy)
    data = config.to_dict()
    for name, value in searched_stop.items():
        set_path(data, name, value)
    try:
        return accuracy_threshold(validate_config(data), baseline_accuracy)
    except ConfigError:
        return float("nan")  # a combination the new job refuses: never equal, so skipped


def _with_best(rows: list[dict], cost: str) -> list[dict]:
    """The rows with ``best_*`` as the new search picks its best feasible step (``RunResult``): by its cost
    (effective MACs, or latency), ties to the higher accuracy, whatever OTHER's cost was. A row without
    effective MACs (stored before TKP existed) is dense: its effective MACs are its MACs."""
    column, best, out = ranked_by(cost), None, []
    for row in rows:
        if pd.isna(row.get("effective_macs", math.nan)):
            row = {**row, "effective_macs": row["macs"]}
        if row["feasible"] and not pd.isna(row[column]) and (
                best is None or cheaper(row[column], row["accuracy"], best[column], best["accuracy"])):
            best = row
        out.append({**row, **{f"best_{name}": best[name] if best is not None else None
                              for name in ("accuracy", "macs", "mac_ratio", "latency_ms", "effective_macs")}})
    return out
