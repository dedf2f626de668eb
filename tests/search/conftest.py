import textwrap

import pytest

JOB = """
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
        path.write_text(textwrap.dedent(JOB.format(name=name, trials=trials, lr=lr, min_accuracy=min_accuracy,
                                                   root=tmp_path / "runs")))
        return path

    return make
