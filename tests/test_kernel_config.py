"""The tkp section: on with topk or nm, each setting refused where it would change nothing."""

import pytest
from typer.testing import CliRunner

from prunetune.cli import app
from prunetune.config import JobConfig, load_config
from prunetune.errors import ConfigError

runner = CliRunner()


def test_tkp_is_off_by_default_and_on_with_topk_or_nm():
    assert not load_config(None, []).tkp.enabled
    assert load_config(None, ["tkp.topk=2"]).tkp.enabled
    config = load_config(None, ["tkp.nm='2:4'"])
    assert config.tkp.enabled and config.tkp.nm_pair == (2, 4)


@pytest.mark.parametrize("config", [["tkp.topk=1", "tkp.reg_type=l2", "tkp.beta=30"], ["tkp.nm='1:4'"], []])
def test_a_tkp_config_round_trips_through_a_dict(config):
    job = load_config(None, config)
    assert JobConfig.from_dict(job.to_dict()) == job


@pytest.mark.parametrize(("overrides", "message"), [
    (["tkp.beta=3"], "tkp: beta set but topk and nm are both null, so TKP is off"),
    (["tkp.stage2_epochs=3", "tkp.exclude=[a]"], "tkp: exclude, stage2_epochs set but topk and nm are both null"),
    (["tkp.topk=2", "tkp.reg_type=l2", "tkp.alpha=2"], "tkp: alpha set but reg_type l2 does not read it"),
    (["tkp.topk=2", "tkp.reg_type=none", "tkp.beta=5", "tkp.alpha=2"],
     "tkp: beta and alpha set but reg_type none does not read them"),
    (["tkp.topk=2", "tkp.stage1_epochs=0"], "tkp: reg_type exponential acts in stage 1, but stage1_epochs is 0"),
    (["tkp.topk=2", "tkp.reg_type=none", "tkp.stage1_epochs=0", "tkp.stage1_lr=0.01"],
     "tkp: stage1_lr is set but stage1_epochs is 0"),
    (["tkp.topk=2", "tkp.stage2_epochs=0", "tkp.stage2_lr=0.01"], "tkp: stage2_lr is set but stage2_epochs is 0"),
    (["tkp.nm='2:4'", "tkp.depthwise=false"], "tkp: depthwise is set but topk is null"),
    (["tkp.nm=2:4"], "tkp.nm: got the number 124: YAML reads an unquoted N:M as a base-60 number"),
    (["tkp.nm='4:4'"], "tkp.nm: nm '4:4' must keep 1 <= N < M"),
    (["tkp.nm=half"], "tkp.nm: nm 'half' is not N:M"),
    (["tkp.topk=0"], "tkp.topk: Input should be greater than or equal to 1"),
    (["tkp.topk=1", "tkp.reg_type=l1"], "tkp.reg_type: unknown tkp regulariser 'l1'; known: exponential, l2, none"),
    (["pruning.schedule.kind=none"], "pruning.schedule.kind none makes no channel steps and tkp is off"),
    (["pruning.schedule.kind=none", "tkp.topk=1", "recovery.final_epochs=2"],
     "recovery.final_epochs acts on channel steps, and pruning.schedule.kind none makes none"),
    (["pruning.schedule.kind=none", "tkp.topk=1", "recovery.sparse_pretrain_epochs=1",
      "recovery.variance_entropy_lambda=0.1"], "recovery.sparse_pretrain_epochs, recovery.variance_entropy_lambda act"),
])
def test_a_tkp_setting_that_changes_nothing_is_refused_naming_it(overrides, message):
    with pytest.raises(ConfigError, match="^invalid config - " + message.replace("(", r"\(")):
        load_config(None, overrides)


def test_tkp_alone_is_a_valid_job():
    job = load_config(None, ["pruning.schedule.kind=none", "tkp.topk=1", "tkp.reg_type=l2", "tkp.beta=100"])
    assert job.pruning.schedule.kind == "none" and job.tkp.topk == 1


def test_the_cli_refuses_a_bad_tkp_setting_in_one_line_with_exit_2(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("model: {name: tiny_cnn}\ntkp: {topk: 2, reg_type: l2, alpha: 4.0}\n")
    result = runner.invoke(app, ["run", str(path)])  # refused before any baseline trains
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip() == "error: invalid config - tkp: alpha set but reg_type l2 does not read it"


def test_tkp_regularisers_are_listed():
    output = runner.invoke(app, ["list", "tkp-regularisers"]).output
    assert [line.split()[0] for line in output.splitlines()[1:]] == ["exponential", "l2", "none"]


def test_a_search_that_turns_tkp_on_per_trial_may_fix_its_stage_settings(tmp_path):
    from prunetune.spaces import load_search

    config, space = load_search(None, ["tkp.stage1_epochs=1", "tkp.stage2_epochs=2", "tkp.exclude=[0.*]",
                                       "search.space={tkp.topk: {choice: [null, 2]}}"])
    assert space.apply(config, {"tkp.topk": None}).tkp.stage1_epochs == 1  # a channel-only trial: TKP off
    assert space.apply(config, {"tkp.topk": 2}).tkp.stage2_epochs == 2
    # A single run of the same settings with TKP off would ignore them: refused.
    path = tmp_path / "job.yaml"
    path.write_text("model: {name: tiny_cnn}\ntkp: {stage1_epochs: 1}\n")
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "tkp: stage1_epochs set but topk and nm are both null" in result.output
