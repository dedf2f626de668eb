import pytest

from prunetune.config import load_config


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

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024 * 1024, configure_logging=False,
             log_to_driver=False)
    yield ray
    ray.shutdown()
