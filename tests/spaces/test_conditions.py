import optuna
import pytest

from prunetune.spaces import Condition, build_search

MAC_AWARE_SPACE = {"search": {"space": {
    "pruning.criterion": {"choice": ["l1", "mac_aware"]},
    "pruning.mac_aware.beta": {"uniform": [-1.0, 0.0], "when": {"pruning.criterion": "mac_aware"}},
}}}


def test_conditional_parameter_is_sampled_exactly_when_its_condition_holds_in_a_real_study():
    _, space = build_search(MAC_AWARE_SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        space.define_by_run(trial)
        criterion = trial.params["pruning.criterion"]
        seen.add(criterion)
        assert ("pruning.mac_aware.beta" in trial.params) == (criterion == "mac_aware")
    assert seen == {"l1", "mac_aware"}  # both branches were exercised


@pytest.mark.parametrize(("criterion", "sampled"), [("mac_aware", True), ("l1", False)])
def test_fixed_trial_samples_the_conditional_parameter_only_under_its_condition(criterion, sampled):
    config, space = build_search(MAC_AWARE_SPACE)
    trial = optuna.trial.FixedTrial({"pruning.criterion": criterion, "pruning.mac_aware.beta": -0.5})
    space.define_by_run(trial)
    assert ("pruning.mac_aware.beta" in trial.params) is sampled
    job = space.apply(config, trial.params)
    assert job.pruning.criterion == criterion
    assert job.pruning.mac_aware.beta == (-0.5 if sampled else 0.0)


def test_list_in_when_lists_alternatives():
    _, space = build_search({"search": {"space": {
        "pruning.repair": {"choice": ["none", "bn", "layerwise", "asr"]},
        "pruning.asr_lambda": {"loguniform": [0.1, 10.0], "when": {"pruning.repair": ["asr", "layerwise"]}},
    }}})
    for repair, sampled in [("none", False), ("bn", False), ("layerwise", True), ("asr", True)]:
        trial = optuna.trial.FixedTrial({"pruning.repair": repair, "pruning.asr_lambda": 1.0})
        space.define_by_run(trial)
        assert ("pruning.asr_lambda" in trial.params) is sampled


def test_every_condition_must_hold():
    _, space = build_search({"search": {"space": {
        "pruning.criterion": {"choice": ["l1", "mac_aware"]},
        "pruning.mac_aware.mode": {"choice": ["multiplicative", "additive"],
                                   "when": {"pruning.criterion": "mac_aware"}},
        "pruning.mac_aware.alpha": {"uniform": [0.25, 1.0],
                                    "when": {"pruning.criterion": "mac_aware", "pruning.mac_aware.mode": "additive"}},
    }}})
    for mode, sampled in [("multiplicative", False), ("additive", True)]:
        trial = optuna.trial.FixedTrial({"pruning.criterion": "mac_aware", "pruning.mac_aware.mode": mode,
                                         "pruning.mac_aware.alpha": 0.5})
        space.define_by_run(trial)
        assert ("pruning.mac_aware.alpha" in trial.params) is sampled


def test_condition_on_a_fixed_field_that_holds_is_settled_at_load():
    _, space = build_search({"pruning": {"repair": "asr"}, "search": {"space": {
        "pruning.asr_lambda": {"loguniform": [0.1, 10.0], "when": {"pruning.repair": "asr"}},
    }}})
    assert space.parameters[0].when == ()


def test_condition_values_are_compared_as_the_config_stores_them():
    # '1e-4' (a string to PyYAML) and 0.0001 are the same learning rate.
    _, space = build_search({"search": {"space": {
        "recovery.lr": {"choice": ["1e-4", 1e-3]},
        "recovery.kd_alpha": {"uniform": [0.0, 1.0], "when": {"recovery.lr": "1e-4"}},
    }}})
    assert space.parameters[0].distribution.values == (1e-4, 1e-3)
    assert space.parameters[1].when == (Condition("recovery.lr", (1e-4,)),)
    trial = optuna.trial.FixedTrial({"recovery.lr": 1e-4, "recovery.kd_alpha": 0.3})
    space.define_by_run(trial)
    assert "recovery.kd_alpha" in trial.params


def test_parameters_are_sampled_after_the_parameters_their_conditions_test():
    _, space = build_search({"search": {"space": {
        "pruning.mac_aware.beta": {"uniform": [-1.0, 0.0], "when": {"pruning.criterion": "mac_aware"}},
        "recovery.lr": {"loguniform": [1e-5, 1e-3]},
        "pruning.criterion": {"choice": ["l1", "mac_aware"]},
    }}})
    assert space.names() == ["recovery.lr", "pruning.criterion", "pruning.mac_aware.beta"]


def test_inline_condition_may_test_a_parameter_listed_in_search_space():
    _, space = build_search({
        "pruning": {"mac_aware": {"beta": {"uniform": [-1.0, 0.0], "when": {"pruning.criterion": "mac_aware"}}}},
        "search": {"space": {"pruning.criterion": {"choice": ["l1", "mac_aware"]}}},
    })
    assert space.names() == ["pruning.criterion", "pruning.mac_aware.beta"]


def test_condition_on_a_skipped_parameter_tests_the_value_the_config_keeps():
    # compensation is sampled only under asr; otherwise it stays at the fixed True, which the
    # condition of kd_alpha then sees.
    _, space = build_search({"pruning": {"compensation": True}, "search": {"space": {
        "pruning.repair": {"choice": ["bn", "asr"]},
        "pruning.compensation": {"choice": [False, True], "when": {"pruning.repair": "asr"}},
        "recovery.kd_alpha": {"uniform": [0.0, 1.0], "when": {"pruning.compensation": True}},
    }}})
    trial = optuna.trial.FixedTrial({"pruning.repair": "bn", "recovery.kd_alpha": 0.2})
    space.define_by_run(trial)
    assert set(trial.params) == {"pruning.repair", "recovery.kd_alpha"}


def test_a_choice_whose_other_values_switch_a_dependent_off_is_checked_branch_by_branch():
    # alpha is sampled for exponential only; l2 refuses an alpha that is set. Checking l2 in
    # exponential's branch (alpha at 1.0) refused a valid space.
    config, space = build_search({"tkp": {"topk": 2}, "search": {"space": {
        "tkp.reg_type": {"choice": ["exponential", "l2"]},
        "tkp.alpha": {"uniform": [1.0, 4.0], "when": {"tkp.reg_type": "exponential"}},
    }}})
    assert space.names() == ["tkp.reg_type", "tkp.alpha"]
    job = space.apply(config, {"tkp.reg_type": "l2"})
    assert (job.tkp.reg_type, job.tkp.alpha) == ("l2", 3.0)
