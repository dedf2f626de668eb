"""Plugins added from outside the package reach every place a name is used.

A criterion, a repair that needs the dense reference and an objective are registered
here, in the test module, exactly as a user's own code would; no prunetune file names
them. Each then passes config validation, shows in `prunetune list` and in the config
reference, and runs through a one-step pipeline.
"""

import torch
from typer.testing import CliRunner

import pytest

from prunetune.cli import app
from prunetune.config import load_config
from prunetune.reference import reference_markdown
from prunetune.objectives import ACCURACY, Goal, Objective, register_objective
from prunetune.pipeline import run
from prunetune.pruning import Criterion
from prunetune.pruning.repair import bn_recalibration, register_repair
from prunetune.registry import CRITERIA, OBJECTIVES, REPAIRS

runner = CliRunner()


class ChannelIndex(Criterion):
    """Later channels matter more (a test plugin)."""

    def raw(self, group, context):
        return torch.arange(1, group.channels + 1, dtype=torch.float32)


@pytest.fixture
def plugins():
    """Register the three plugins for one test, then forget them (other tests list the registries)."""
    seen_references = []

    def reference_checked(context):
        """BN recalibration that records the dense reference it was handed (a test plugin)."""
        seen_references.append(context.reference)
        bn_recalibration(context)

    CRITERIA.register("channel_index")(ChannelIndex)
    register_repair("reference_checked", needs_reference=True)(reference_checked)
    register_objective(Objective("accuracy_mac_ratio", (ACCURACY, Goal("mac_ratio", "mac_ratio", "min", "mac_ratio")),
                                 description="accuracy against the MAC ratio (a test plugin)"))
    yield seen_references
    CRITERIA.remove("channel_index")
    REPAIRS.remove("reference_checked")
    OBJECTIVES.remove("accuracy_mac_ratio")


PLUGGED = ("pruning.criterion=channel_index", "pruning.repair=reference_checked", "search.objectives=accuracy_mac_ratio")


def test_outside_plugins_pass_config_validation_and_appear_in_its_errors(plugins):
    config = load_config(None, list(PLUGGED))
    assert (config.pruning.criterion, config.pruning.repair, config.search.objectives) == (
        "channel_index", "reference_checked", "accuracy_mac_ratio")
    with pytest.raises(Exception, match=r"unknown criterion 'l3'; known: bn_gamma, channel_index, l1"):
        load_config(None, ["pruning.criterion=l3"])


def test_outside_plugins_are_listed_with_their_descriptions(plugins):
    output = runner.invoke(app, ["list"]).output
    assert "channel_index  Later channels matter more (a test plugin)." in output
    assert "reference_checked  BN recalibration that records the dense reference" in output
    assert "accuracy_mac_ratio  accuracy against the MAC ratio (a test plugin)" in output


def test_outside_plugins_are_in_the_config_reference(plugins):
    lines = {line.split("|")[1].strip(" `"): line for line in reference_markdown().splitlines()
             if line.startswith("| `")}
    assert "channel_index" in lines["pruning.criterion"] and "channel_index" in lines["pruning.mac_aware.base"]
    assert "reference_checked" in lines["pruning.repair"]
    assert "accuracy_mac_ratio" in lines["search.objectives"]


def test_outside_plugins_run_through_a_one_step_pipeline(plugins, tiny_job, tmp_path):
    config = tiny_job(*PLUGGED, "pruning.scope=all", "pruning.schedule.targets=[0.25]", "recovery.epochs=1",
                      "stop.min_accuracy=0.0")
    rows = []
    result = run(config, report=rows.append, directory=tmp_path / "run", objective=OBJECTIVES.get("accuracy_mac_ratio"))
    assert len(result.rows) == 1 and result.rows[0].sparsity == pytest.approx(0.25, abs=0.02)
    # needs_reference made the pipeline measure the dense model once and hand it over
    assert len(plugins) == 1 and plugins[0] is not None and plugins[0].points
    values = OBJECTIVES.get("accuracy_mac_ratio").values(rows[0])
    assert values == {"objective_accuracy": rows[0]["accuracy"], "objective_mac_ratio": rows[0]["mac_ratio"]}
    assert rows[0]["mac_ratio"] < 1.0
