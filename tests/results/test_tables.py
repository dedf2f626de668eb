from prunetune.results.tables import short_names


def test_front_table_headers_are_the_shortest_unique_suffixes():
    assert short_names(["recovery.lr", "recovery.lr_high", "pruning.schedule.steps", "a.steps.x", "b.steps.x"]) == [
        "lr", "lr_high", "steps", "a.steps.x", "b.steps.x"]


def test_the_front_table_adds_theoretical_effective_macs_only_where_they_differ():
    import pandas as pd

    from prunetune.results.tables import front_table

    front = pd.DataFrame({"trial": [0, 1], "step": [1, 2], "accuracy": [0.9, 0.8], "macs": [4e6, 4e6],
                          "effective_macs": [4e6, 1e6], "mac_ratio": [0.5, 0.5], "params": [10, 10]})
    table = front_table(front)
    assert list(table["eff. MACs (theoretical)"]) == ["4.00M", "1.00M"] and list(table["MACs"]) == ["4.00M", "4.00M"]
    assert "eff. MACs (theoretical)" not in front_table(front.assign(effective_macs=front["macs"])).columns
