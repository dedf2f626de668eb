"""Which searched settings matter: PED-ANOVA over each trial's own front, or the reason it is not shown.

The method, the target and the threshold are argued in docs/inspecting-a-search.md:

- **Target: the hypervolume of the trial's feasible steps**, not the trial's objective
  values. A trial's objective values are one step's (its most pruned feasible one), while
  the product's front is taken over every step; the hypervolume its feasible steps
  dominate above the reference (accuracy: the threshold; MACs: the baseline's) scores the
  whole curve a trial contributes. A trial without a feasible step scores 0 (its settings
  are evidence too). Single-objective searches use the same measure in one dimension.
- **Method: Optuna's PED-ANOVA**, named on the plot, with ``target_quantile`` 0.25: how
  differently the best quarter of the trials chose a setting than all the trials did.
  It handles conditional settings (``mac_aware.beta`` exists only with that criterion),
  which Optuna's fANOVA drops, and it only ranks the targets.
- **At least ``MIN_TRIALS`` finished trials**: Optuna's PED-ANOVA documentation asks for at
  least 5 trials in the top quantile; with the best quarter that is 20.
- **Only settings that varied** among the trials evaluated: PED-ANOVA's Parzen estimators
  give a setting that never changed a non-zero score (their prior weighs 1 trial against 3
  differently from 1 against 20), and Optuna spreads an all-zero result evenly.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from prunetune.objectives import Objective
from prunetune.results.front import hypervolume

if TYPE_CHECKING:
    import optuna

METHOD = "PED-ANOVA"
TOP_SHARE = 0.25  # PED-ANOVA's target_quantile: the best quarter of the trials
MIN_IN_TOP = 5  # Optuna's PED-ANOVA docs: "at least 5 trials above target_quantile"
MIN_TRIALS = math.ceil(MIN_IN_TOP / TOP_SHARE)  # 20
FINISHED = ("COMPLETE", "PRUNED")  # PRUNED: the trial ended without a feasible step (target 0)


@dataclass(frozen=True)
class SettingImportance:
    """Each varied setting's share of PED-ANOVA's importance, or why none is shown."""

    trials: int  # finished trials with stored steps: those evaluated
    target: str  # what a trial is ranked by, in words
    shares: dict[str, float] = field(default_factory=dict)  # setting -> share, largest first; empty: not shown
    constant: dict[str, object] = field(default_factory=dict)  # settings that never varied -> their one value
    reason: str = ""  # why nothing is shown

    @property
    def shown(self) -> bool:
        return bool(self.shares)


def front_references(objective: Objective, rows: pd.DataFrame) -> tuple[dict[str, str], dict[str, float]]:
    """The columns, directions and reference point of a trial's hypervolume under ``objective``.

    Accuracy is measured above the trial's threshold, MACs as a share of the baseline's
    (``effective_mac_ratio`` below 1: the MAC ratio of a channel-only step, what a TKP step's
    masks leave of it otherwise), latency in ms below the slowest step in ``rows`` (rows hold no
    baseline latency).
    """
    columns, reference = {}, {}
    for column in _axes(objective):
        if column == "accuracy":
            columns["accuracy"], reference["accuracy"] = "max", float(rows["threshold"].min())
        elif column in ("macs", "effective_macs"):  # the MAC goal's column, front_area's cost
            columns["effective_mac_ratio"], reference["effective_mac_ratio"] = "min", 1.0
        else:
            columns[column], reference[column] = "min", float(rows[column].max())
    return columns, reference


def _axes(objective: Objective) -> list[str]:
    """The row columns a trial is ranked on: a whole-curve goal (front_area) is itself the area
    of accuracy against the objective's cost, so it ranks on those two columns."""
    axes = [column for goal in objective.goals
            for column in (("accuracy", objective.cost) if goal.measure else (goal.column,))]
    return list(dict.fromkeys(axes))


def trial_front_volumes(rows: pd.DataFrame, objective: Objective) -> dict[int, float]:
    """Trial number -> the hypervolume its feasible steps dominate (0 without a feasible step).

    One reference point for all the trials in ``rows``, so their volumes compare.
    """
    rows = rows.dropna(subset=["trial"])
    columns, reference = front_references(objective, rows)
    return {int(number): hypervolume(steps, reference, columns) if steps["feasible"].astype(bool).any() else 0.0
            for number, steps in rows.groupby("trial")}


def target_description(objective: Objective) -> str:
    axes = " x ".join({"accuracy": "accuracy above the threshold", "macs": "share of the baseline's MACs removed"}
                      .get(column, f"{column} below the slowest step of all trials") for column in _axes(objective))
    return f"hypervolume of the trial's feasible steps ({axes})"


def setting_importance(study: optuna.Study, rows: pd.DataFrame, objective: Objective) -> SettingImportance:
    """PED-ANOVA importance of each searched setting that varied, for reaching a good per-step front."""
    volumes = trial_front_volumes(rows, objective) if not rows.empty else {}
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name in FINISHED and t.number in volumes]
    described = target_description(objective)
    values: dict[str, list] = {}
    for trial in trials:
        for name, value in trial.params.items():
            values.setdefault(name, []).append(value)
    constant = {name: seen[0] for name, seen in values.items() if len({repr(v) for v in seen}) == 1}
    varied = sorted(name for name in values if name not in constant)
    result = SettingImportance(len(trials), described, constant=constant)
    if len(trials) < MIN_TRIALS:
        return _without(result, f"{len(trials)} finished trial{'s' * (len(trials) != 1)}; {METHOD} needs at least "
                                f"{MIN_TRIALS} ({MIN_IN_TOP} in the best quarter), so no importance is shown")
    if not varied:
        return _without(result, f"no searched setting varied among the {len(trials)} finished trials")
    raw = _ped_anova(trials, varied, volumes)
    total = sum(raw.values())
    if not total > 0:
        return _without(result, f"{METHOD} found no setting that sets the best quarter of the {len(trials)} trials "
                                "apart (their fronts tie)")
    shares = {name: score / total for name, score in sorted(raw.items(), key=lambda item: -item[1])}
    return SettingImportance(result.trials, described, shares, constant)


def _without(result: SettingImportance, reason: str) -> SettingImportance:
    return SettingImportance(result.trials, result.target, constant=result.constant, reason=reason)


def _ped_anova(trials: list, names: list[str], volumes: dict[int, float]) -> dict[str, float]:
    """Unnormalised PED-ANOVA scores: Optuna would spread an all-zero result evenly over the settings."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator

    from prunetune.study import optuna_info_unlogged

    # A study of the trials' settings, each valued by its front's hypervolume (larger is better).
    with optuna_info_unlogged():  # "A new study created in memory": an internal study, not the user's concern
        ranked = optuna.create_study(direction="maximize", study_name="importance")
    for trial in trials:
        ranked.add_trial(optuna.trial.create_trial(params=trial.params, distributions=trial.distributions,
                                                   value=volumes[trial.number]))
    with warnings.catch_warnings():  # "regimes with fewer than 2 trials", "normalize is experimental"
        warnings.simplefilter("ignore")
        return optuna.importance.get_param_importances(
            ranked, evaluator=PedAnovaImportanceEvaluator(target_quantile=TOP_SHARE), params=names, normalize=False)
