from importlib import resources

import optuna
import pytest
import yaml

from prunetune.config import JobConfig
from prunetune.spaces import build_search, default_space

DEFAULT_NAMES = [
    "pruning.criterion", "pruning.mac_aware.mode", "pruning.mac_aware.beta", "pruning.mac_aware.alpha",
    "pruning.schedule.kind", "pruning.schedule.final_sparsity", "pruning.schedule.steps", "pruning.repair",
    "pruning.asr_lambda", "pruning.compensation", "recovery.lr", "_lr_high", "recovery.lr_high",
    "recovery.lr_high_threshold", "recovery.kd_alpha", "recovery.kd_temperature", "tkp.topk", "tkp.reg_type",
    "tkp.beta", "tkp.alpha",
]


@pytest.fixture(scope="module")
def default_search():
    return build_search({"recovery": {"epochs": 1}})


def test_default_space_ships_as_package_data():
    text = resources.files("prunetune.spaces").joinpath("default.yaml").read_text()
    assert list(yaml.safe_load(text)) == DEFAULT_NAMES


def test_a_job_without_distributions_searches_the_default_space(default_search):
    config, space = default_search
    assert space.names() == DEFAULT_NAMES
    assert space == default_space()
    assert config.search.space == space.to_dict()


def test_default_space_offers_the_criteria_and_repairs():
    space = default_space()
    by_name = {parameter.name: parameter for parameter in space}
    assert by_name["pruning.criterion"].distribution.values == ("l1", "l2", "bn_gamma", "taylor", "lamp", "vbp",
                                                                "mac_aware")
    assert by_name["pruning.repair"].distribution.values == ("none", "bn", "layerwise", "asr")
    assert [condition.describe() for condition in by_name["pruning.asr_lambda"].when] == ["pruning.repair = asr"]
    assert [condition.describe() for condition in by_name["pruning.compensation"].when] == ["pruning.repair = none"]
    assert [condition.describe() for condition in by_name["recovery.lr_high"].when] == ["_lr_high = true"]


def test_thirty_random_trials_all_give_valid_configs(default_search):
    config, space = default_search
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    pairs_used, tkp_used = set(), set()
    for _ in range(30):
        trial = study.ask()
        space.define_by_run(trial)
        job = space.apply(config, trial.params)
        assert isinstance(job, JobConfig) and job.recovery.epochs == 1
        # RecoveryConfig's pair rule, and each conditional parameter exactly under its condition.
        assert (job.recovery.lr_high is None) == (job.recovery.lr_high_threshold is None)
        assert ("recovery.lr_high" in trial.params) == ("recovery.lr_high_threshold" in trial.params)
        pairs_used.add(job.recovery.lr_high is not None)
        assert ("pruning.asr_lambda" in trial.params) == (job.pruning.repair == "asr")
        assert ("pruning.compensation" in trial.params) == (job.pruning.repair == "none")
        # TKP off (null) or on, its settings sampled only where it is on and the regulariser reads them.
        assert ("tkp.reg_type" in trial.params) == job.tkp.enabled
        assert ("tkp.alpha" in trial.params) == (job.tkp.enabled and job.tkp.reg_type == "exponential")
        tkp_used.add(job.tkp.topk)
        assert not job.pruning.compensation or job.pruning.repair == "none"
        assert ("pruning.mac_aware.beta" in trial.params) == (job.pruning.criterion == "mac_aware")
        assert ("pruning.mac_aware.alpha" in trial.params) == (
            job.pruning.criterion == "mac_aware" and job.pruning.mac_aware.mode == "additive")
        assert job.pruning.schedule.kind in ("linear", "geometric")
        study.tell(trial, job.recovery.lr)
    assert pairs_used == {True, False} and tkp_used == {None, 1, 2, 4}


def test_fields_the_job_sets_are_left_out_and_their_conditions_settled():
    _, space = build_search({"pruning": {"criterion": "mac_aware", "repair": "bn"}})
    by_name = {parameter.name: parameter for parameter in space}
    assert "pruning.criterion" not in by_name and "pruning.repair" not in by_name
    assert "pruning.asr_lambda" not in by_name  # repair is fixed at bn: never asr
    assert by_name["pruning.mac_aware.beta"].when == ()
    assert [condition.path for condition in by_name["pruning.mac_aware.alpha"].when] == ["pruning.mac_aware.mode"]


def test_a_fixed_targets_schedule_drops_steps_and_final_sparsity():
    _, space = build_search({"pruning": {"schedule": {"kind": "targets", "targets": [0.1, 0.2]}}})
    assert not {"pruning.schedule.kind", "pruning.schedule.steps", "pruning.schedule.final_sparsity"} & set(
        space.names())


def test_a_fixed_lr_high_pair_drops_the_helper_that_decides_it():
    config, space = build_search({"recovery": {"lr_high": 3e-5, "lr_high_threshold": 0.21}})
    assert not {"_lr_high", "recovery.lr_high", "recovery.lr_high_threshold"} & set(space.names())
    assert (config.recovery.lr_high, config.recovery.lr_high_threshold) == (3e-5, 0.21)


def test_an_explicit_space_replaces_the_default():
    _, space = build_search({"search": {"space": {"recovery.lr": {"loguniform": [1e-5, 1e-3]}}}})
    assert space.names() == ["recovery.lr"]
