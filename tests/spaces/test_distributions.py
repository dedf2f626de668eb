import optuna
import pytest

from prunetune.errors import ConfigError
from prunetune.spaces import Choice, FloatRange, IntRange, build_search
from prunetune.spaces.distributions import is_distribution, parse_distribution


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"choice": ["l1", "vbp"]}, Choice(("l1", "vbp"))),
        ({"uniform": [0.0, 1.0]}, FloatRange("uniform", 0.0, 1.0)),
        ({"loguniform": [1e-5, 1e-3]}, FloatRange("loguniform", 1e-5, 1e-3, log=True)),
        ({"int": [2, 10]}, IntRange(2, 10)),
        ({"int": [2, 10], "step": 2}, IntRange(2, 10, step=2)),
        ({"int": [1, 64], "log": True}, IntRange(1, 64, log=True)),
        ({"float": [0.3, 0.8], "step": 0.05}, FloatRange("float", 0.3, 0.8, step=0.05)),
        ({"float": [1e-4, 1e-2], "log": True}, FloatRange("float", 1e-4, 1e-2, log=True)),
    ],
)
def test_each_kind_parses_into_its_distribution(spec, expected):
    distribution, problems = parse_distribution(spec, "here")
    assert problems == []
    assert distribution == expected


def test_exponents_that_pyyaml_reads_as_strings_are_numbers():
    # PyYAML reads 1e-5 (no dot) as the string '1e-5'.
    distribution, problems = parse_distribution({"loguniform": ["1e-5", "1e-3"]}, "here")
    assert problems == [] and (distribution.low, distribution.high) == (1e-5, 1e-3)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"uniform": [0.5, 0.2]}, "uniform needs low < high, got [0.5, 0.2]"),
        ({"loguniform": [0, 1e-3]}, "loguniform needs low > 0, got 0"),
        ({"choice": []}, "choice needs a non-empty list of values, got []"),
        ({"choice": ["l1", "l1"]}, "choice lists l1 twice"),
        ({"uniform": [0, 1], "step": 0.1}, "unknown key 'step' in a uniform distribution"),
        ({"int": [2, 9], "step": 2}, "int [2, 9] is not a whole number of steps of 2; end it at 8 or 10"),
        ({"int": [1.5, 3]}, "int needs whole-number bounds, got [1.5, 3]"),
        ({"float": [0.3, 0.82], "step": 0.05}, "end it at 0.8 or 0.85"),
        ({"float": [0.1, 1.0], "step": 0.1, "log": True}, "takes step or log: true, not both"),
        ({"uniform": ["low", 1]}, "uniform bounds must be finite numbers, got ['low', 1]"),
        ({"uniform": [0, 1], "choice": [1]},
         "exactly one of choice, uniform, loguniform, int, float; found uniform, choice"),
    ],
)
def test_malformed_distribution_is_named_with_its_bad_value(spec, message):
    distribution, problems = parse_distribution(spec, "search.space.recovery.kd_alpha")
    assert distribution is None
    assert [path for path, _ in problems] == ["search.space.recovery.kd_alpha"]
    assert message in problems[0][1]


@pytest.mark.parametrize("values", [[1.0, float("inf")], [float("nan")], [[0.1, float("-inf")]], [{"a": float("nan")}]])
def test_a_choice_holding_inf_or_nan_is_refused_naming_the_entry(values):
    # JSON has no inf: .inf in a choice came back from the saved space as null.
    distribution, problems = parse_distribution({"choice": values}, "search.space.recovery.kd_temperature")
    assert distribution is None
    ((path, message),) = problems
    assert path == "search.space.recovery.kd_temperature" and message.startswith("choice values must be finite numbers")


def test_a_choice_of_inf_in_a_job_is_refused_by_load_search():
    with pytest.raises(ConfigError, match=r"search.space.recovery.kd_temperature: choice values must be finite "
                                          r"numbers, got inf in \[1.0, inf\]"):
        build_search({"search": {"space": {"recovery.kd_temperature": {"choice": [1.0, float("inf")]}}}})


def test_a_mapping_is_a_distribution_only_with_one_kind_key_and_its_options():
    assert is_distribution({"choice": [1, 2], "when": {"pruning.repair": "asr"}})
    assert is_distribution({"int": [1, 4], "step": 1})
    assert not is_distribution({"choice": [1], "width": 2})
    assert not is_distribution({"choice": [1], "uniform": [0, 1]})
    assert not is_distribution({"width": 2})


def test_every_kind_suggests_values_inside_its_range_through_optuna():
    _, space = build_search({"search": {"space": {
        "pruning.criterion": {"choice": ["l1", "vbp"]},
        "recovery.kd_alpha": {"uniform": [0.2, 0.4]},
        "recovery.lr": {"loguniform": [1e-5, 1e-3]},
        "pruning.schedule.steps": {"int": [2, 10], "step": 2},
        "recovery.epochs": {"int": [1, 64], "log": True},
        "pruning.schedule.final_sparsity": {"float": [0.3, 0.8], "step": 0.1},
    }}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        space.define_by_run(trial)
        params = trial.params
        assert params["pruning.criterion"] in ("l1", "vbp")
        assert 0.2 <= params["recovery.kd_alpha"] <= 0.4
        assert 1e-5 <= params["recovery.lr"] <= 1e-3
        assert params["pruning.schedule.steps"] in (2, 4, 6, 8, 10)
        assert 1 <= params["recovery.epochs"] <= 64
        assert round(params["pruning.schedule.final_sparsity"] * 10, 6) in (3, 4, 5, 6, 7, 8)
