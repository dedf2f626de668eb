import os
import shutil
import textwrap

import pytest

from prunetune.config import load_config


@pytest.fixture(scope="session", autouse=True)
def private_search_index(tmp_path_factory):
    """The index of searches every driver writes (prunetune/search_index.py) lives under tmp for the
    whole session, subprocesses included: tests never touch the user's ~/.local/share."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data-home")))
        yield


@pytest.fixture
def tiny_job(tmp_path):
    """A config for a seconds-long baseline: tiny_cnn on a slice of digits at 16px."""

    def make(*overrides: str):
        return load_config(
            None,
            [
                f"storage.root={tmp_path / 'runs'}",
                "model.name=tiny_cnn",
                "data.image_size=16",
                "data.train_size=256",
                "data.calibration_size=64",
                "data.batch_size=64",
                "data.hflip=false",
                "baseline.epochs=2",
                *overrides,
            ],
        )

    return make


@pytest.fixture(scope="session")
def ray_session():
    """The one Ray instance of the test session (2 CPUs, no dashboard, a small object store)."""
    import ray

    if ray.is_initialized():  # a driver run in-process by an earlier test started its own
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024, configure_logging=False,
             log_to_driver=False)
    yield ray
    ray.shutdown()


SEARCH_JOB = """
name: {name}
model: {{name: tiny_cnn}}
data: {{name: digits, image_size: 16, train_size: 256, calibration_size: 64, batch_size: 64, hflip: false}}
baseline: {{epochs: 2, lr: 0.1}}
pruning:
  scope: all
  schedule: {{kind: targets, targets: [0.2, 0.4]}}
  criterion: {{choice: [l1, bn_gamma]}}
recovery: {{epochs: 1, optimizer: sgd, lr: {lr}}}
stop: {{max_accuracy_drop: null, min_accuracy: {min_accuracy}}}
search: {{num_samples: {trials}, sampler: random, max_concurrent_trials: 2, objectives: accuracy_macs}}
storage: {{root: {root}}}
runtime: {{threads: 1}}
"""


@pytest.fixture
def search_job(tmp_path):
    """Write a tiny search config (tiny_cnn on 16px digits, two steps, one recovery epoch)."""

    def make(name="s", trials=3, lr="0.01", min_accuracy="0.0"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(textwrap.dedent(SEARCH_JOB.format(name=name, trials=trials, lr=lr, min_accuracy=min_accuracy,
                                                   root=tmp_path / "runs")))
        return path

    return make


@pytest.fixture
def dot_installed():
    """Render tests run where Graphviz's dot is; CI (PRUNETUNE_REQUIRE_DOT=1, set by .ci/run) fails without it."""
    if shutil.which("dot") is None:
        if os.environ.get("PRUNETUNE_REQUIRE_DOT"):
            pytest.fail("Graphviz's dot is missing but PRUNETUNE_REQUIRE_DOT is set: `make dot` installs it")
        pytest.skip("Graphviz's dot is not installed (`make dot` installs it)")
