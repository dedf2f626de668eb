import math

import numpy as np

from prunetune.objectives import OBJECTIVES
from prunetune.progress import PrintedView, SearchStatus, best_step, clock


def row(trial, step, accuracy, mac_ratio, feasible=True, latency_ms=math.nan):
    return {"trial": trial, "step": step, "accuracy": accuracy, "mac_ratio": mac_ratio, "macs": int(mac_ratio * 1e6),
            "latency_ms": latency_ms, "feasible": feasible}


ROWS = [row(0, 1, 0.98, 0.9), row(0, 2, 0.97, 0.6), row(1, 3, 0.99, 0.4, feasible=False), row(1, 1, 0.985, 0.8),
        row(2, 1, math.nan, 0.5)]


def test_the_best_step_of_a_mac_objective_is_the_least_costly_feasible_one():
    assert best_step(ROWS, OBJECTIVES.get("accuracy_macs")) == "60.0% MACs at accuracy 0.9700 (trial 0 step 2)"
    assert best_step(ROWS, OBJECTIVES.get("min_macs")) == "60.0% MACs at accuracy 0.9700 (trial 0 step 2)"


def test_a_tkp_step_is_ranked_and_shown_at_its_effective_macs():
    tkp = {**row(3, 4, 0.975, 0.7), "effective_macs": 300_000, "effective_mac_ratio": 0.3}
    assert best_step([*ROWS, tkp], OBJECTIVES.get("accuracy_macs")) == \
        "30.0% eff. MACs at accuracy 0.9750 (trial 3 step 4)"


def test_the_best_step_of_the_accuracy_objective_is_the_most_accurate_feasible_one():
    assert best_step(ROWS, OBJECTIVES.get("max_accuracy")) == "accuracy 0.9850 at 80.0% MACs (trial 1 step 1)"


def test_a_latency_objective_ranks_and_shows_latency_and_store_rows_with_numpy_values_count():
    rows = [{**row(np.int64(4), np.int64(2), np.float64(0.97), 0.7), "latency_ms": np.float64(1.25)},
            {**row(5, 1, 0.99, 0.5), "latency_ms": 2.5}, {**row(math.nan, 1, 0.99, 0.5), "latency_ms": math.nan}]
    assert best_step(rows, OBJECTIVES.get("accuracy_latency")) == "1.25 ms at accuracy 0.9700 (trial 4 step 2)"


def test_no_feasible_step_is_no_best():
    assert best_step([row(0, 1, 0.5, 0.5, feasible=False)], OBJECTIVES.get("accuracy_macs")) is None


def test_the_status_line_says_finished_running_requested_failed_best_and_time():
    status = SearchStatus(requested=8, finished=3, running=2, failed=1, best="60.0% MACs at accuracy 0.9700 "
                          "(trial 0 step 2)", elapsed=130, remaining=3725)
    assert status.describe() == ("3/8 trials finished, 2 running, 1 failed | best: 60.0% MACs at accuracy 0.9700 "
                                 "(trial 0 step 2) | 2:10 elapsed, about 1:02:05 left")
    early = SearchStatus(requested=8, finished=0, running=2, failed=0, best=None, elapsed=5, remaining=None)
    assert early.describe() == "0/8 trials finished, 2 running | no feasible step yet | 0:05 elapsed"


def test_the_printed_view_prints_lines_and_the_status(capsys):
    view = PrintedView()
    view.start()
    view.line("trial 0 step 1: ...")
    view.status(SearchStatus(4, 1, 2, 0, None, 61, 122))
    view.stop()
    assert capsys.readouterr().out == ("trial 0 step 1: ...\n"
                                       "search: 1/4 trials finished, 2 running | no feasible step yet | 1:01 elapsed, "
                                       "about 2:02 left\n")
    assert not view.live


def test_clock():
    assert [clock(s) for s in (0, 59.6, 75, 3725)] == ["0:00", "1:00", "1:15", "1:02:05"]
