from pathlib import Path

from prunetune.config import load_config
from prunetune.spaces import load_search

EXAMPLE = Path(__file__).parents[2] / "examples" / "digits_search.yaml"


def test_digits_search_example_loads_as_a_small_search():
    config, space = load_search(EXAMPLE)
    assert (config.search.num_samples, config.search.objectives) == (6, "accuracy_macs")
    assert (config.model.name, config.data.name, config.recovery.epochs) == ("mobilenet_v3_small", "digits", 3)
    assert config.pruning.scope == "all"
    assert space.names() == ["pruning.criterion", "pruning.mac_aware.beta", "pruning.schedule.final_sparsity",
                             "recovery.lr", "recovery.kd_alpha"]
    assert config.search.enqueue == [{"pruning.criterion": "l1", "recovery.kd_alpha": 0.5}]  # seed 001's, tried first


def test_digits_search_example_fixed_part_loads_as_a_plain_config():
    assert load_config(EXAMPLE).pruning.schedule.steps == 3
