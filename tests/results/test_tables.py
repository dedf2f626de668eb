import json

import pandas as pd

from prunetune.results.tables import count_format, front_records, front_table, records_json, short_names


def test_front_table_headers_are_the_shortest_unique_suffixes():
    assert short_names(["recovery.lr", "recovery.lr_high", "pruning.schedule.steps", "a.steps.x", "b.steps.x"]) == [
        "lr", "lr_high", "steps", "a.steps.x", "b.steps.x"]


FRONT = pd.DataFrame({
    "trial": [0, 1, 2], "step": [1, 2, 3], "config.pruning.criterion": ["l1", "l1", "lamp"],
    "param.recovery.kd_alpha": [0.67, 0.657, 0.5], "param.recovery.epochs": [3.0, 10.0, float("nan")],
    "settings": [json.dumps({"recovery.kd_alpha": 0.67, "recovery.epochs": 3}),
                 json.dumps({"recovery.kd_alpha": 0.657, "recovery.epochs": 10}),
                 json.dumps({"recovery.kd_alpha": 0.5})],
    "accuracy": [0.67, 0.657, 0.9], "macs": [50_680_000, 980_000, 1_250_000_000],
    "mac_ratio": [0.67, 0.657, 1.0], "params": [2_500_000, 9_811, 25_557_032],
    "phase": ["prune", "prune", "final"], "feasible": [True, True, False], "latency_ms": [float("nan")] * 3,
})


def test_the_front_table_gives_each_column_one_format():
    table = front_table(FRONT)
    assert table["accuracy"].tolist() == ["0.6700", "0.6570", "0.9000"]
    assert table["MAC ratio"].tolist() == ["67.0%", "65.7%", "100.0%"]
    assert table["MACs"].tolist() == ["0.05G", "0.00G", "1.25G"]  # one unit per column, from its largest value
    assert table["params"].tolist() == ["2.50M", "0.01M", "25.56M"]
    assert table["kd_alpha"].tolist() == ["0.670", "0.657", "0.500"]  # 3 significant digits
    assert table["epochs"].tolist() == ["3", "10", "-"]  # an integer setting stays one; a missing one is "-"
    assert "latency ms" not in table


def test_counts_below_a_thousand_are_plain_integers():
    assert [count_format([999, 12])(value) for value in (999, 12)] == ["999", "12"]
    assert [count_format([12_345, 999])(value) for value in (12_345, 999)] == ["12.35K", "1.00K"]


def test_machine_records_carry_raw_numbers_and_typed_settings():
    records = json.loads(records_json(front_records(FRONT)))
    assert records[0] == {"trial": 0, "step": 1, "phase": "prune", "feasible": True, "accuracy": 0.67,
                          "macs": 50_680_000, "mac_ratio": 0.67, "params": 2_500_000, "recovery.epochs": 3,
                          "recovery.kd_alpha": 0.67, "pruning.criterion": "l1"}
    assert records[2]["recovery.epochs"] is None and records[2]["feasible"] is False
    with_latency = front_records(FRONT.assign(latency_ms=[1.5, 2.25, float("nan")]))
    assert json.loads(records_json(with_latency))[1]["latency_ms"] == 2.25
    assert json.loads(records_json(with_latency))[2]["latency_ms"] is None
