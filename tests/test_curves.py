"""A trial's curve (prunetune/curves.py) and the whole-curve objective front_area."""

import pandas as pd
import pytest

from prunetune.curves import cost_ratio, front_area
from prunetune.objectives import OBJECTIVES
from prunetune.results.front import hypervolume

THRESHOLD = 0.6


def step(number, mac_ratio, accuracy, **extra):
    return {"step": number, "mac_ratio": mac_ratio, "accuracy": accuracy, "threshold": THRESHOLD,
            "feasible": accuracy >= THRESHOLD, **extra}


CURVE = [step(1, 0.8, 0.9), step(2, 0.7, 0.8), step(3, 0.6, 0.85), step(4, 0.4, 0.7), step(5, 0.3, 0.4)]


def test_front_area_is_the_area_a_trials_feasible_steps_dominate_against_threshold_and_dense_cost():
    # By hand: (0.8, 0.9) alone over [0.8, 1]: 0.2 x 0.3; (0.6, 0.85) over [0.6, 0.8]: 0.2 x 0.25;
    # (0.4, 0.7) over [0.4, 0.6]: 0.2 x 0.1. (0.7, 0.8) is dominated; (0.3, 0.4) is below the threshold.
    assert front_area(CURVE, "macs") == pytest.approx(0.06 + 0.05 + 0.02)
    # the same hypervolume as the results layer's over the same rows
    assert front_area(CURVE, "macs") == pytest.approx(
        hypervolume(pd.DataFrame(CURVE), {"accuracy": THRESHOLD, "mac_ratio": 1.0}))


def test_front_area_has_no_value_without_a_feasible_step_and_none_for_steps_at_the_reference():
    assert front_area([step(1, 0.5, 0.5)], "macs") is None
    assert front_area([step(1, 0.5, THRESHOLD), step(2, 1.0, 0.9)], "macs") == 0.0


def test_the_front_area_objective_reports_the_area_so_far_after_every_step():
    objective = OBJECTIVES.get("front_area")
    assert not objective.multi and objective.modes == ("max",)
    values = []
    for index, row in enumerate(CURVE):
        best = max((r for r in CURVE[:index + 1] if r["feasible"]), key=lambda r: -r["mac_ratio"])
        reported = {**row, "best_accuracy": best["accuracy"], "best_macs": 1}
        values.append(objective.values(reported, CURVE[:index])["objective_front_area"])
    # + (0.7, 0.8): 0.1 x 0.2 beside step 1; + (0.6, 0.85): 0.2 x 0.25 over [0.6, 0.8]; + (0.4, 0.7); infeasible
    assert values == pytest.approx([0.06, 0.08, 0.11, 0.13, 0.13])


def test_a_latency_cost_ratio_is_latency_over_the_baselines_timed_in_the_same_trial():
    assert cost_ratio({"latency_ms": 3.0, "baseline_latency_ms": 4.0, "mac_ratio": 0.2}, "latency_ms") == 0.75
    assert cost_ratio({"latency_ms": float("nan"), "baseline_latency_ms": 4.0}, "latency_ms") is None
    rows = [{**row, "latency_ms": row["mac_ratio"] * 2, "baseline_latency_ms": 4.0} for row in CURVE]  # half
    assert front_area(rows, "latency_ms") == pytest.approx(
        hypervolume(pd.DataFrame(rows).assign(mac_ratio=lambda df: df["mac_ratio"] / 2),
                    {"accuracy": THRESHOLD, "mac_ratio": 1.0}))
    assert OBJECTIVES.get("front_area_latency").measures_latency
