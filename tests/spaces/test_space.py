import pickle

import optuna
import pytest
import yaml

from prunetune.config import JobConfig
from prunetune.errors import ConfigError
from prunetune.spaces import build_search, load_search

SPACE = {
    "pruning.criterion": {"choice": ["l1", "mac_aware"]},
    "pruning.mac_aware.beta": {"uniform": [-1.0, 0.0], "when": {"pruning.criterion": "mac_aware"}},
    "recovery.lr": {"loguniform": [1e-5, 1e-3]},
    "pruning.schedule.targets": {"choice": [[0.1, 0.2], [0.1, 0.3, 0.5]]},
}

@pytest.fixture
def searched():
    return build_search({"recovery": {"epochs": 2}, "search": {"space": SPACE}})


def test_define_by_run_touches_nothing_but_suggest_and_returns_nothing(searched, recording_trial):
    _, space = searched
    trial = recording_trial({"pruning.criterion": "mac_aware"})
    assert space.define_by_run(trial) is None
    assert trial.touched == ["suggest_categorical", "suggest_float", "suggest_float", "suggest_categorical"]


def test_define_by_run_suggests_each_active_parameter_under_its_dotted_name(searched):
    _, space = searched
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    space.define_by_run(trial)
    active = {"pruning.criterion", "recovery.lr", "pruning.schedule.targets"}
    if trial.params["pruning.criterion"] == "mac_aware":
        active.add("pruning.mac_aware.beta")
    assert set(trial.params) == active


def test_list_choices_reach_optuna_as_json_text_and_the_config_as_lists(searched):
    config, space = searched
    trial = optuna.trial.FixedTrial({"pruning.criterion": "l1", "recovery.lr": 1e-4,
                                     "pruning.schedule.targets": "[0.1, 0.3, 0.5]"})
    space.define_by_run(trial)
    assert trial.params["pruning.schedule.targets"] == "[0.1, 0.3, 0.5]"
    assert space.apply(config, trial.params).pruning.schedule.targets == (0.1, 0.3, 0.5)


def test_apply_sets_the_sampled_values_and_keeps_the_fixed_ones(searched):
    config, space = searched
    job = space.apply(config, {"pruning.criterion": "mac_aware", "pruning.mac_aware.beta": -0.25,
                               "recovery.lr": 3e-4, "pruning.schedule.targets": "[0.1, 0.2]"})
    assert isinstance(job, JobConfig)
    assert (job.pruning.criterion, job.pruning.mac_aware.beta, job.recovery.lr) == ("mac_aware", -0.25, 3e-4)
    assert job.pruning.schedule.targets == (0.1, 0.2)
    assert job.recovery.epochs == 2
    assert job.search.space == config.search.space


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"pruning.criterion": "l1", "recovery.lr": 1e-4, "pruning.schedule.targets": "[0.1, 0.2]", "trial_id": 3},
         "trial_id: is not a parameter of this search space; parameters: pruning.criterion"),
        ({"pruning.criterion": "mac_aware", "recovery.lr": 1e-4, "pruning.schedule.targets": "[0.1, 0.2]"},
         "pruning.mac_aware.beta: is missing: its conditions hold, so the trial must sample it"),
        ({"pruning.criterion": "l1", "pruning.mac_aware.beta": -0.5, "recovery.lr": 1e-4,
          "pruning.schedule.targets": "[0.1, 0.2]"},
         "pruning.mac_aware.beta: was given, but it is sampled only when pruning.criterion = mac_aware"),
        ({"pruning.criterion": "l1", "recovery.lr": 0.5, "pruning.schedule.targets": "[0.1, 0.2]"},
         "recovery.lr: 0.5 is outside loguniform [1e-05, 0.001]"),
        ({"pruning.criterion": "vbp", "recovery.lr": 1e-4, "pruning.schedule.targets": "[0.1, 0.2]"},
         "pruning.criterion: 'vbp' is not one of the choices choice: l1, mac_aware"),
    ],
)
def test_apply_rejects_params_the_space_could_not_have_produced(searched, params, expected):
    config, space = searched
    with pytest.raises(ConfigError) as caught:
        space.apply(config, params)
    assert any(f"{path}: {message}".startswith(expected) for path, message in caught.value.problems)


def test_names_len_and_describe(searched):
    _, space = searched
    assert space.names() == list(SPACE) and len(space) == 4
    table = space.describe().splitlines()
    assert table[0] == "| parameter | distribution | sampled when |"
    assert "| `pruning.mac_aware.beta` | uniform [-1, 0] | pruning.criterion = mac_aware |" in table
    assert "| `pruning.schedule.targets` | choice: [0.1, 0.2], [0.1, 0.3, 0.5] | always |" in table


def test_inline_and_search_space_forms_give_the_same_config_and_space():
    inline = {
        "recovery": {"epochs": 2, "lr": SPACE["recovery.lr"]},
        "pruning": {"criterion": SPACE["pruning.criterion"], "mac_aware": {"beta": SPACE["pruning.mac_aware.beta"]},
                    "schedule": {"targets": SPACE["pruning.schedule.targets"]}},
    }
    listed = {"recovery": {"epochs": 2}, "search": {"space": SPACE}}
    inline_config, inline_space = build_search(inline)
    listed_config, listed_space = build_search(listed)
    assert inline_config == listed_config
    assert inline_space.to_dict() == listed_space.to_dict()
    assert set(inline_space.names()) == set(listed_space.names())


def test_config_carries_its_space_and_rebuilds_the_same_pair_from_its_dict(searched):
    config, space = searched
    assert config.search.space == space.to_dict()
    assert build_search(config.to_dict()) == (config, space)
    assert yaml.safe_load(yaml.safe_dump(config.to_dict())) == config.to_dict()


def test_space_pickles_for_ray(searched):
    _, space = searched
    assert pickle.loads(pickle.dumps(space)) == space


def test_overrides_may_set_distributions_inline_and_in_search_space(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({"recovery": {"epochs": 2}}))
    config, space = load_search(path, [
        "recovery.lr={loguniform: [1e-5, 1e-3]}",
        "search.space.pruning.criterion={choice: [l1, mac_aware]}",
    ])
    assert space.to_dict() == {"recovery.lr": {"loguniform": [1e-5, 1e-3]},
                               "pruning.criterion": {"choice": ["l1", "mac_aware"]}}
    assert config.recovery.epochs == 2


def test_fixed_value_of_a_searched_field_stands_when_its_parameter_is_skipped():
    config, space = build_search({"pruning": {"asr_lambda": 2.0}, "search": {"space": {
        "pruning.repair": {"choice": ["bn", "asr"]},
        "pruning.asr_lambda": {"loguniform": [0.1, 10.0], "when": {"pruning.repair": "asr"}},
    }}})
    assert space.apply(config, {"pruning.repair": "bn"}).pruning.asr_lambda == 2.0
    assert space.apply(config, {"pruning.repair": "asr", "pruning.asr_lambda": 0.5}).pruning.asr_lambda == 0.5


def test_model_kwargs_holds_a_literal_mapping_unless_it_is_exactly_a_distribution():
    config, space = build_search({"model": {"kwargs": {"choice": 3}}, "recovery": {"lr": {"uniform": [1e-4, 1e-3]}}})
    assert config.model.kwargs == {"choice": 3} and space.names() == ["recovery.lr"]
    # Read as a distribution, so refused: model.* decides the baseline every trial shares.
    with pytest.raises(ConfigError, match="model.kwargs cannot be searched"):
        build_search({"model": {"kwargs": {"choice": [{}, {"width": 8}]}}})


def test_ray_optuna_search_passes_dotted_names_through_unchanged(searched):
    from ray.tune.search.optuna import OptunaSearch

    config, space = searched
    searcher = OptunaSearch(space=space.define_by_run, metric="accuracy", mode="max", seed=0)
    params = searcher.suggest("trial_0")
    assert set(params) >= {"pruning.criterion", "recovery.lr", "pruning.schedule.targets"}
    assert isinstance(space.apply(config, params), JobConfig)


def test_a_job_with_a_teacher_section_searches_inside_it_and_beside_it():
    # recovery.teacher is an optional section (TeacherConfig | None): its fields are leaves too.
    teacher = {"name": "tiny_resnet", "checkpoint": "t.pt", "kwargs": {"choice": [{"width": 8}, {"width": 16}]}}
    job, space = build_search({"recovery": {"teacher": teacher, "kd_alpha": {"choice": [0.3, 0.6]}}})
    assert job.recovery.teacher.checkpoint == "t.pt" and job.recovery.teacher.kwargs == {}
    assert sorted(space.names()) == ["recovery.kd_alpha", "recovery.teacher.kwargs"]
    assert build_search({"recovery": {"teacher": None}})[0].recovery.teacher is None
