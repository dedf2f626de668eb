"""Every way a space can be wrong is caught by build_search and names the path and the bad value."""

import pytest

from prunetune.errors import ConfigError, UserError
from prunetune.spaces import build_search, load_search


CASES = {
    "bad choice value": (
        {"search": {"space": {"pruning.criterion": {"choice": ["l1", "l3"]}}}},
        "search.space.pruning.criterion: choice value 'l3' is not allowed; known: bn_gamma, l1, l2, lamp, "
        "mac_aware, random, taylor, vbp",
    ),
    "bad inline choice value": (
        {"pruning": {"repair": {"choice": ["bn", "asrr"]}}},
        "pruning.repair: choice value 'asrr' is not allowed; known: asr, bn, layerwise, none",
    ),
    "unknown dataset in a choice": (
        {"data": {"name": {"choice": ["digits", "mnist"]}}},
        "data.name: choice value 'mnist' is not allowed; known: cifar10, cifar100, digits, imagefolder, shapes",
    ),
    "upper bound above the field's limit": (
        {"recovery": {"kd_alpha": {"uniform": [0.5, 1.5]}}},
        "recovery.kd_alpha: uniform upper bound 1.5 is not allowed: Input should be less than or equal to 1",
    ),
    "lower bound below the field's limit": (
        {"search": {"space": {"pruning.schedule.final_sparsity": {"float": [0.0, 0.5], "step": 0.1}}}},
        "search.space.pruning.schedule.final_sparsity: float lower bound 0.0 is not allowed: Input should be greater "
        "than 0",
    ),
    "float range on an int field": (
        {"recovery": {"epochs": {"uniform": [1, 3]}}},
        "recovery.epochs: uniform value 1.764 is not allowed: Input should be a valid integer, got a number with a "
        "fractional part; recovery.epochs takes whole numbers: use int: [low, high]",
    ),
    "int range through a gap of a literal field": (
        {"data": {"channels": {"int": [1, 3]}}},
        "data.channels: int value 2 is not allowed; known: 1, 3",
    ),
    "list choice with a bad item": (
        {"pruning": {"schedule": {"targets": {"choice": [[0.1, 0.2], [0.1, 1.2]]}}}},
        "pruning.schedule.targets: choice value [0.1, 1.2] is not allowed: item 1: Input should be less than 1",
    ),
    "list choice breaking a section rule": (
        {"pruning": {"schedule": {"targets": {"choice": [[0.1, 0.2], [0.3, 0.2]]}}}},
        "pruning.schedule.targets: choice value [0.3, 0.2] makes the config invalid: pruning.schedule: targets must "
        "increase strictly, got [0.3, 0.2]",
    ),
    "misspelt path in search.space": (
        {"search": {"space": {"pruning.critrion": {"choice": ["l1"]}}}},
        "search.space.pruning.critrion: 'pruning.critrion' is not a config field; did you mean pruning.criterion?",
    ),
    "misspelt inline field": (
        {"recovery": {"learning_rate": {"loguniform": [1e-5, 1e-3]}}},
        "recovery.learning_rate: 'recovery.learning_rate' is not a config field; fields of recovery: recovery.epochs",
    ),
    "a whole section": (
        {"pruning": {"schedule": {"choice": [{"kind": "linear"}]}}},
        "pruning.schedule: pruning.schedule is a section, not a field: search its fields instead "
        "(pruning.schedule.kind",
    ),
    "a setting of the search itself": (
        {"search": {"num_samples": {"int": [1, 4]}}},
        "search.num_samples: search.* and storage.* settings belong to the search itself",
    ),
    "a fixed value in search.space": (
        {"search": {"space": {"recovery.lr": 0.001}}},
        "search.space.recovery.lr: expected a distribution (a mapping with one of choice, uniform, loguniform, int, "
        "float), got 0.001",
    ),
    "search.space that is not a mapping": (
        {"search": {"space": "default"}},
        "search.space: must map field paths to distributions, got 'default' (leave search.space out",
    ),
    "the same field searched twice": (
        {"recovery": {"lr": {"uniform": [1e-4, 1e-3]}},
         "search": {"space": {"recovery.lr": {"uniform": [1e-4, 1e-3]}}}},
        "search.space.recovery.lr: recovery.lr is searched twice (also at recovery.lr (inline)); keep one",
    ),
    "lr_high searched without its threshold": (
        {"search": {"space": {"recovery.lr_high": {"loguniform": [1e-5, 1e-3]}}}},
        "recovery: lr_high and lr_high_threshold are set together or not at all (when the search samples "
        "recovery.lr_high=1e-05)",
    ),
    "min_accuracy searched next to the default drop": (
        {"search": {"space": {"stop.min_accuracy": {"uniform": [0.8, 0.9]}}}},
        "stop: set max_accuracy_drop or min_accuracy, not both (when the search samples stop.min_accuracy=0.8)",
    ),
    "a helper that is not a choice": (
        {"search": {"space": {"_use": {"uniform": [0, 1]}}}},
        "search.space._use: a helper parameter exists for conditions to test, so it is a choice, not uniform",
    ),
    "a helper no condition tests": (
        {"search": {"space": {"_use": {"choice": [False, True]}}}},
        "search.space._use: helper _use is tested by no condition",
    ),
    "a condition on a misspelt field": (
        {"search": {"space": {"pruning.asr_lambda": {"uniform": [0.1, 1], "when": {"pruning.repar": "asr"}}}}},
        "search.space.pruning.asr_lambda.when.pruning.repar: 'pruning.repar' is not a config field; did you mean "
        "pruning.repair?",
    ),
    "a condition value the field cannot take": (
        {"search": {"space": {"pruning.repair": {"choice": ["bn", "asr"]},
                              "pruning.asr_lambda": {"uniform": [0.1, 1], "when": {"pruning.repair": "asrr"}}}}},
        "search.space.pruning.asr_lambda.when.pruning.repair: 'asrr' is not a value pruning.repair can take; known: "
        "asr, bn, layerwise, none",
    ),
    "a condition value the tested choice never takes": (
        {"search": {"space": {"pruning.repair": {"choice": ["bn", "asr"]},
                              "pruning.asr_lambda": {"uniform": [0.1, 1], "when": {"pruning.repair": "layerwise"}}}}},
        "search.space.pruning.asr_lambda.when.pruning.repair: 'layerwise' never holds: pruning.repair takes bn, asr",
    ),
    "a condition on a fixed field that never holds": (
        {"search": {"space": {"pruning.asr_lambda": {"uniform": [0.1, 1], "when": {"pruning.repair": "asr"}}}}},
        "search.space.pruning.asr_lambda.when: pruning.repair = asr never holds: pruning.repair is fixed at 'bn', so "
        "pruning.asr_lambda would never be sampled",
    ),
    "a condition on a range": (
        {"search": {"space": {"recovery.lr": {"loguniform": [1e-5, 1e-3]},
                              "recovery.kd_alpha": {"uniform": [0, 1], "when": {"recovery.lr": 1e-4}}}}},
        "search.space.recovery.kd_alpha.when.recovery.lr: conditions test choices; recovery.lr is loguniform",
    ),
    "a condition on an unknown helper": (
        {"search": {"space": {"recovery.kd_alpha": {"uniform": [0, 1], "when": {"_kd": True}}}}},
        "search.space.recovery.kd_alpha.when._kd: no helper parameter _kd; helpers: none",
    ),
    "a condition on the parameter itself": (
        {"search": {"space": {"pruning.repair": {"choice": ["bn", "asr"], "when": {"pruning.repair": "bn"}}}}},
        "search.space.pruning.repair.when.pruning.repair: pruning.repair cannot depend on itself",
    ),
    "conditions in a cycle": (
        {"search": {"space": {
            "pruning.repair": {"choice": ["bn", "asr"], "when": {"pruning.compensation": True}},
            "pruning.compensation": {"choice": [False, True], "when": {"pruning.repair": "asr"}}}}},
        "search.space.pruning.repair.when: conditions form a cycle among pruning.repair, pruning.compensation",
    ),
    "a when that is not a mapping": (
        {"recovery": {"kd_alpha": {"uniform": [0, 1], "when": "always"}}},
        "recovery.kd_alpha.when: must map field paths (or _helpers) to a value or a list of values, got 'always'",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_problem_names_the_path_and_the_bad_value(case, problems):
    raw, expected = CASES[case]
    found = problems(raw)
    assert any(problem.startswith(expected) for problem in found), found


def test_every_problem_is_raised_at_once(problems):
    found = problems({
        "data": {"image_size": 4},
        "pruning": {"criterion": {"choice": ["l3"]}},
        "recovery": {"kd_alpha": {"uniform": [0.5, 0.2]}},
        "search": {"space": {"pruning.critrion": {"choice": ["l1"]}}},
    })
    assert [problem.split(":")[0] for problem in found] == [
        "search.space.pruning.critrion", "recovery.kd_alpha", "pruning.criterion", "data.image_size",
    ]


def test_config_error_is_a_user_error_so_the_cli_exits_2():
    with pytest.raises(ConfigError) as caught:
        build_search({"pruning": {"criterion": {"choice": ["l3"]}}})
    assert isinstance(caught.value, UserError) and caught.value.exit_code == 2


def test_fixed_part_is_validated_with_searched_fields_at_their_defaults(problems):
    found = problems({"recovery": {"lr_high": {"loguniform": [1e-5, 1e-3]}, "lr_high_threshold": 0.3}})
    assert len(found) == 1
    assert found[0].startswith("recovery: lr_high and lr_high_threshold are set together or not at all")
    assert "searched fields hold their default or fixed value: recovery.lr_high" in found[0]


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_search(tmp_path / "missing.yaml")
