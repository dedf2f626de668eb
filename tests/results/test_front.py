import math

import numpy as np
import optuna
import pandas as pd
import pytest

from prunetune.errors import UserError
from prunetune.results import best_within_macs, cheapest_above, compare_fronts, hypervolume, pareto_front

NAN = math.nan


def _table(points):
    """(trial, step, accuracy, macs, feasible) tuples -> a results-like frame (baseline 100 MACs)."""
    df = pd.DataFrame(points, columns=["trial", "step", "accuracy", "macs", "feasible"])
    return df.assign(mac_ratio=df["macs"] / 100.0)


# Known front by hand: (0.95, 40) (0.90, 30) tie pair (0.85, 20) x2, (0.70, 10).
# Dominated: (0.80, 40), (0.90, 35), (0.85, 25). Infeasible (0.99, 5) would dominate all.
# NaN accuracy at 1 MAC and NaN MACs must never appear.
HAND = _table([
    (0, 1, 0.95, 40, True), (0, 2, 0.90, 30, True), (0, 3, 0.85, 20, True), (0, 4, 0.99, 5, False),
    (1, 1, 0.80, 40, True), (1, 2, 0.90, 35, True), (1, 3, 0.85, 20, True), (1, 4, 0.70, 10, True),
    (2, 1, 0.85, 25, True), (2, 2, NAN, 1, True), (2, 3, 0.97, NAN, True),
])


def _points(front):
    return sorted(zip(front["trial"], front["step"]))


def test_front_of_the_hand_made_table_keeps_ties_and_drops_nans_and_infeasible_rows():
    front = pareto_front(HAND)
    assert _points(front) == [(0, 1), (0, 2), (0, 3), (1, 3), (1, 4)]
    assert list(front["macs"]) == sorted(front["macs"])  # cheapest first


def test_with_infeasible_rows_the_infeasible_point_dominates_the_rest():
    assert _points(pareto_front(HAND, feasible_only=False)) == [(0, 4)]


def test_front_over_other_objectives_and_directions():
    front = pareto_front(HAND, {"accuracy": "min", "macs": "max"})
    assert _points(front) == [(1, 1), (1, 4)]  # (0.80, 40) and (0.70, 10): neither is both worse and costlier


def test_empty_and_bad_objectives():
    assert pareto_front(HAND[HAND["feasible"] & (HAND["accuracy"] > 2)]).empty
    with pytest.raises(UserError, match="latency"):
        pareto_front(HAND, {"accuracy": "max", "latency": "min"})
    with pytest.raises(UserError, match="'up'"):
        pareto_front(HAND, {"accuracy": "up", "macs": "min"})


def test_budget_queries_and_their_ties():
    assert tuple(best_within_macs(HAND, 30)[["trial", "step"]]) == (0, 2)
    assert tuple(best_within_macs(HAND, 24)[["trial", "step"]]) == (0, 3)  # tie at 0.85/20: first row
    assert best_within_macs(HAND, 9) is None  # only the infeasible 5-MAC row fits
    assert tuple(cheapest_above(HAND, 0.9)[["trial", "step"]]) == (0, 2)
    assert tuple(cheapest_above(HAND, 0.5)[["trial", "step"]]) == (1, 4)
    assert cheapest_above(HAND, 0.96) is None  # 0.97 has NaN MACs, 0.99 is infeasible
    tie = _table([(0, 1, 0.9, 30, True), (1, 1, 0.9, 20, True)])
    assert tuple(best_within_macs(tie, 100)[["trial", "step"]]) == (1, 1)  # equal accuracy: fewer MACs


def test_hypervolume_matches_the_area_by_hand_and_optunas_own_computation():
    # Front in (accuracy, mac_ratio): (0.95,.4) (0.9,.3) (0.85,.2) (0.7,.1); reference (0.6, 1.0).
    # Staircase area: sum over points sorted by accuracy of (acc_i - acc_{i-1}) x (1 - ratio_i).
    by_hand = (0.7 - 0.6) * 0.9 + (0.85 - 0.7) * 0.8 + (0.9 - 0.85) * 0.7 + (0.95 - 0.9) * 0.6
    value = hypervolume(HAND, {"accuracy": 0.6, "effective_mac_ratio": 1.0})
    assert value == pytest.approx(by_hand)
    points = np.array([[-0.95, 0.4], [-0.9, 0.3], [-0.85, 0.2], [-0.7, 0.1]])
    assert value == pytest.approx(optuna._hypervolume.compute_hypervolume(points, np.array([-0.6, 1.0])))
    # Points not better than the reference add nothing.
    assert hypervolume(HAND, {"accuracy": 0.96, "effective_mac_ratio": 1.0}) == 0.0
    with pytest.raises(UserError, match="reference"):
        hypervolume(HAND, {"accuracy": 0.6})


def test_compare_fronts_reports_hypervolumes_dominance_and_the_joint_front():
    better = _table([(0, 1, 0.96, 40, True), (0, 2, 0.90, 20, True)])
    result = compare_fronts({"hand": HAND, "better": better}, {"accuracy": 0.6, "effective_mac_ratio": 1.0})
    assert result.hypervolume["hand"] == pytest.approx(hypervolume(HAND, {"accuracy": 0.6, "effective_mac_ratio": 1.0}))
    # better's (0.96, .4) dominates hand's (0.95, .4); (0.90, .2) dominates (0.90, .3) and both (0.85, .2).
    assert result.dominated_share["hand"] == pytest.approx(4 / 5)
    assert result.dominated_share["better"] == 0.0
    assert sorted(zip(result.union_front["experiment"], result.union_front["accuracy"])) == [
        ("better", 0.90), ("better", 0.96), ("hand", 0.70)]


def test_the_front_ranks_by_effective_macs_and_older_stores_fall_back_to_macs():
    # A TKP step (same dense MACs as its channel step, a quarter of them effective) beside channel-only steps.
    mixed = _table([(0, 1, 0.90, 40, True), (0, 2, 0.88, 40, True), (1, 1, 0.87, 20, True)])
    mixed["effective_macs"] = [40, 10, 20]
    assert _points(pareto_front(mixed)) == [(0, 1), (0, 2)]  # (1, 1) is dominated by the TKP step's 10
    assert tuple(cheapest_above(mixed, 0.85)[["trial", "step"]]) == (0, 2)
    assert tuple(best_within_macs(mixed, 15)[["trial", "step"]]) == (0, 2)
    # A store written before the column existed: effective MACs are the dense ones.
    assert _points(pareto_front(mixed.drop(columns="effective_macs"))) == [(0, 1), (1, 1)]


def test_hypervolume_by_default_counts_a_tkp_step_at_its_effective_mac_ratio():
    # Channel-only (0.9, 0.4) beside a TKP step with the same dense ratio and a quarter of it effective.
    mixed = _table([(0, 1, 0.90, 40, True), (1, 1, 0.90, 40, True)])
    mixed["effective_mac_ratio"] = [0.4, 0.1]
    reference = {"accuracy": 0.6, "effective_mac_ratio": 1.0}
    assert hypervolume(mixed, reference) == pytest.approx((0.9 - 0.6) * (1 - 0.1))
    # A channel-only store (no effective column) scores what mac_ratio gives.
    assert hypervolume(mixed.drop(columns="effective_mac_ratio"), reference) == pytest.approx((0.9 - 0.6) * (1 - 0.4))
    comparison = compare_fronts({"channel": mixed.iloc[:1], "tkp": mixed.iloc[1:]}, reference)
    assert comparison.dominated_share == {"channel": 1.0, "tkp": 0.0}
