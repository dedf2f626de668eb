"""The private Ray and Optuna APIs ``prunetune/internals.py`` wraps are there, in the shape it was checked against.

A failure here after a dependency update names the wrapper to re-read against the new
version's source; only then update ``CHECKED_AGAINST``.
"""

import importlib
import importlib.metadata
import inspect
import re
from pathlib import Path

import numpy as np
import optuna
import pytest

import prunetune
from prunetune import internals
from prunetune.search.quiet import TUNE_QUIET

PRIVATE_USE = re.compile(r"\._ot_|optuna\._|ray\.[\w.]*\._|\._trial_id\b|\._storage\b|_suggest_from_define_by_run")


@pytest.mark.parametrize("package", sorted(internals.CHECKED_AGAINST))
def test_installed_ray_and_optuna_are_the_versions_the_wrappers_were_checked_against(package):
    installed, checked = importlib.metadata.version(package), internals.CHECKED_AGAINST[package]
    assert installed == checked, (f"{package} {installed} is installed but prunetune/internals.py was checked against "
                                  f"{checked}: re-check each of its wrappers that uses {package}, then update "
                                  "CHECKED_AGAINST")


def one_parameter(trial: optuna.Trial) -> None:
    trial.suggest_float("x", 0, 1)


def test_searcher_study_is_the_study_optuna_search_asks_and_pickles(tmp_path):
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space=one_parameter, metric="m", mode="max", study_name="kept")
    study = internals.searcher_study(searcher)
    assert isinstance(study, optuna.Study), "OptunaSearch no longer holds _ot_study: re-check searcher_study"
    study.ask()
    searcher.save(str(tmp_path / "searcher.pkl"))
    restored = OptunaSearch()
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert internals.searcher_study(restored).study_name == "kept", "OptunaSearch.save/restore no longer carry " \
        "_ot_study: re-check searcher_study"
    assert len(internals.searcher_study(restored).trials) == 1


def test_hypervolume_wrapper_calls_optunas_wfg_with_the_signature_it_was_checked_against():
    from optuna._hypervolume import compute_hypervolume

    parameters = list(inspect.signature(compute_hypervolume).parameters)
    assert parameters == ["loss_vals", "reference_point", "assume_pareto"], \
        f"optuna._hypervolume.compute_hypervolume{inspect.signature(compute_hypervolume)}: re-check hypervolume"
    # inside [0, 2]^2 each point dominates a 1 x 2 strip; the strips overlap in one unit square
    assert internals.hypervolume(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([2.0, 2.0])) == pytest.approx(3.0)


def test_ray_checkpoint_logger_names_the_module_that_logs_each_checkpoint():
    module = importlib.import_module(internals.RAY_CHECKPOINT_LOGGER)
    assert module.logger.name == internals.RAY_CHECKPOINT_LOGGER, "re-check RAY_CHECKPOINT_LOGGER"
    assert "Checkpoint successfully created" in inspect.getsource(module), "re-check RAY_CHECKPOINT_LOGGER"


def test_ray_auth_logger_names_the_module_that_logs_the_token_auth_notice():
    module = importlib.import_module(internals.RAY_AUTH_LOGGER)
    assert module.logger.name == internals.RAY_AUTH_LOGGER, "re-check RAY_AUTH_LOGGER"
    assert "Token authentication is enabled for this Ray cluster" in inspect.getsource(module), \
        "re-check RAY_AUTH_LOGGER"


def test_a_trials_spec_hands_its_name_and_folder_creators_to_the_trial():
    from ray.tune.experiment import config_parser

    source = inspect.getsource(config_parser._create_trial_from_spec)
    for key in ("trial_name_creator", "trial_dirname_creator"):
        assert f'{key}=spec.get("{key}")' in source, f"re-check internals.named_trial_spec ({key})"
    spec = internals.named_trial_spec({"run": "t", "config": {}}, "namer")
    assert spec["trial_name_creator"] == spec["trial_dirname_creator"] == "namer" and spec["run"] == "t"


def test_no_module_but_internals_uses_a_private_ray_or_optuna_name():
    package = Path(prunetune.__file__).parent
    offenders = [f"{path.relative_to(package)}:{number}: {line.strip()}"
                 for path in sorted(package.rglob("*.py")) if path.name != "internals.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1) if PRIVATE_USE.search(line)]
    assert offenders == [], "wrap these in prunetune/internals.py:\n" + "\n".join(offenders)


# Each wrapper below reads or writes attributes Ray sets in a constructor or method body;
# the check reads that source, so a renamed attribute fails here, naming the wrapper.
RAY_ATTRIBUTES = [
    ("repoint_restored_tuner", "ray.tune.tuner", "Tuner", "__init__", "self._local_tuner"),
    ("repoint_restored_tuner", "ray.tune.impl.tuner_internal", "TunerInternal", "__init__", "self._tune_config"),
    ("repoint_restored_tuner", "ray.tune.impl.tuner_internal", "TunerInternal", "__init__", "self._run_config"),
    ("searcher_state", "ray.tune.search.optuna.optuna_search", "OptunaSearch", "__init__", "self._storage"),
    ("searcher_storage", "ray.tune.search.optuna.optuna_search", "OptunaSearch", "__init__", "self._storage"),
    ("restore_searcher_state", "ray.tune.search.optuna.optuna_search", "OptunaSearch", "__init__", "self._sampler"),
    ("repoint_experiment", "ray.tune.search.search_generator", "SearchGenerator", "set_state", "self._experiment"),
    ("repoint_experiment", "ray.train._internal.storage", "StorageContext", "__init__", "self.storage_fs_path"),
    ("repoint_experiment", "ray.train._internal.storage", "StorageContext", "__init__", "self.experiment_dir_name"),
]


@pytest.mark.parametrize("wrapper, module, cls, method, attribute", RAY_ATTRIBUTES,
                         ids=[f"{w}:{a}" for w, _, _, _, a in RAY_ATTRIBUTES])
def test_the_ray_attributes_the_resume_wrappers_use_are_set_where_they_were_checked(wrapper, module, cls, method,
                                                                                   attribute):
    assert hasattr(internals, wrapper)
    owner = getattr(importlib.import_module(module), cls)
    source = inspect.getsource(getattr(owner, method))
    assert re.search(rf"{re.escape(attribute)}\b\s*(:[^=]*)?=", source), (
        f"{module}.{cls}.{method} no longer sets {attribute}: re-read internals.{wrapper} against the installed Ray")


def test_the_legacy_output_switch_still_selects_tunes_engine_that_prints_nothing_at_verbosity_0(monkeypatch):
    from ray.tune.experimental.output import get_air_verbosity

    (name, value), = internals.TUNE_LEGACY_OUTPUT.items()
    monkeypatch.delenv(name, raising=False)
    assert get_air_verbosity(0) is not None, "Tune's new output engine is no longer the default: re-check TUNE_LEGACY_OUTPUT"
    monkeypatch.setenv(name, value)
    assert get_air_verbosity(0) is None, f"{name}={value} no longer selects Tune's legacy output: re-check TUNE_LEGACY_OUTPUT"


@pytest.mark.parametrize("name", [*sorted(TUNE_QUIET), "TUNE_WARN_THRESHOLD_S"])
def test_the_tune_variables_prunetune_sets_are_still_ones_tune_reads(name):
    from ray.tune.constants import TUNE_ENV_VARS

    assert name in TUNE_ENV_VARS, f"Tune no longer lists {name}: re-check prunetune/search/quiet.py and cli/searching.py"


def test_tunes_slow_result_threshold_is_read_when_ray_tune_is_imported():
    # Why the CLI sets TUNE_WARN_THRESHOLD_S before anything imports Ray (cli/searching.py).
    from ray.tune.utils.util import warn_if_slow

    source = inspect.getsource(warn_if_slow)
    assert re.search(r'DEFAULT_THRESHOLD = float\(os\.environ\.get\("TUNE_WARN_THRESHOLD_S"', source), \
        "warn_if_slow no longer reads TUNE_WARN_THRESHOLD_S at import: re-check cli/searching.py"


def test_the_group_warning_prunetune_filters_is_the_one_optuna_emits():
    with pytest.warns(optuna.exceptions.ExperimentalWarning) as caught:
        optuna.samplers.TPESampler(multivariate=True, group=True)
    assert any(str(warning.message).startswith(internals.OPTUNA_GROUP_WARNING) for warning in caught), \
        f"Optuna's warnings for group=True: {[str(w.message) for w in caught]}: re-check OPTUNA_GROUP_WARNING"
