from prunetune.results.tables import short_names


def test_front_table_headers_are_the_shortest_unique_suffixes():
    assert short_names(["recovery.lr", "recovery.lr_high", "pruning.schedule.steps", "a.steps.x", "b.steps.x"]) == [
        "lr", "lr_high", "steps", "a.steps.x", "b.steps.x"]
