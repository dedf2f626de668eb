"""search.enqueue: partial settings checked against the space before Ray starts."""

import pytest

from prunetune.errors import ConfigError
from prunetune.spaces import load_search
from prunetune.spaces.partial import optuna_params

SPACE = ["search.space={pruning.criterion: {choice: [l1, mac_aware]}, "
         "pruning.mac_aware.beta: {uniform: [-1.0, 0.0], when: {pruning.criterion: mac_aware}}, "
         "recovery.lr: {loguniform: [5.0e-4, 3.0e-3]}, pruning.schedule.final_sparsity: {float: [0.15, 0.3], step: 0.05}, "
         "pruning.exclude: {choice: [[], [conv1]]}}", "pruning.schedule.kind=linear"]


def _problems(*settings: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as raised:
        load_search(None, [*SPACE, f"search.enqueue=[{', '.join(settings)}]"])
    return dict(raised.value.problems)


def test_enqueued_settings_that_the_space_can_produce_load():
    config, space = load_search(None, [*SPACE, "search.enqueue=[{pruning.criterion: mac_aware, pruning.mac_aware.beta: "
                                               "-0.5, pruning.schedule.final_sparsity: 0.2, pruning.exclude: [conv1]}, "
                                               "{recovery.lr: 1.0e-3}]"])
    assert config.search.enqueue[1] == {"recovery.lr": 1e-3}
    assert optuna_params(space, config.search.enqueue[0]) == {
        "pruning.criterion": "mac_aware", "pruning.mac_aware.beta": -0.5, "pruning.schedule.final_sparsity": 0.2,
        "pruning.exclude": '["conv1"]'}  # a choice goes to Optuna by its label


def test_a_value_outside_its_distribution_names_the_field_the_value_and_what_is_allowed():
    assert _problems("{recovery.lr: 1.0e-4}", "{pruning.criterion: l3}", "{pruning.schedule.final_sparsity: 0.17}") == {
        "search.enqueue[0].recovery.lr": "0.0001 is not a value of this parameter; allowed: loguniform [0.0005, 0.003]",
        "search.enqueue[1].pruning.criterion": "l3 is not a value of this parameter; allowed: choice: l1, mac_aware",
        "search.enqueue[2].pruning.schedule.final_sparsity": "0.17 is not a value of this parameter; allowed: "
                                                             "float [0.15, 0.3] step 0.05"}


def test_an_unknown_path_and_a_field_the_space_does_not_search_are_refused():
    problems = _problems("{recovery.lrr: 0.001, recovery.kd_alpha: 0.5}")
    assert problems["search.enqueue[0].recovery.lrr"].startswith("'recovery.lrr' is not a config field; did you mean "
                                                                 "recovery.lr?")
    assert problems["search.enqueue[0].recovery.kd_alpha"] == (
        "recovery.kd_alpha is not searched in this space (searched: pruning.criterion, pruning.mac_aware.beta, "
        "recovery.lr, pruning.schedule.final_sparsity, pruning.exclude)")


def test_a_conditional_setting_whose_condition_the_setting_rules_out_is_refused():
    problems = _problems("{pruning.criterion: l1, pruning.mac_aware.beta: -0.5}")
    assert problems == {"search.enqueue[0].pruning.mac_aware.beta": (
        "is sampled only when pruning.criterion = mac_aware, but here pruning.criterion is l1: Optuna would drop the "
        "value; leave pruning.mac_aware.beta out, or set what its condition needs")}
    load_search(None, [*SPACE, "search.enqueue=[{pruning.mac_aware.beta: -0.5}]"])  # the sampler may pick mac_aware


def test_an_empty_setting_is_refused():
    assert _problems("{}") == {"search.enqueue[0]": "must map searched field paths to values (e.g. "
                                                    "{pruning.criterion: l1}), got {}"}
