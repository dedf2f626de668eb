import pickle

import numpy as np
import pytest
import torch

from prunetune.config import load_config
from prunetune.data import build_splits
from prunetune.errors import DataError


def _write_batch(path, count, label_key, classes, seed):
    rng = np.random.default_rng(seed)
    batch = {b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
             label_key: rng.integers(0, classes, count).tolist(), b"batch_label": b"test"}
    with path.open("wb") as handle:
        pickle.dump(batch, handle)
    return batch


@pytest.fixture
def cifar10_root(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for index in range(1, 6):
        _write_batch(folder / f"data_batch_{index}", 20, b"labels", 10, index)
    test = _write_batch(folder / "test_batch", 30, b"labels", 10, 99)
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [b"c%d" % i for i in range(10)]}, handle)
    return tmp_path, test


def test_cifar10_loads_official_pickle_layout_from_parent_or_folder(cifar10_root):
    root, test = cifar10_root
    for where in (root, root / "cifar-10-batches-py"):
        splits = build_splits(load_config(None, ["data.name=cifar10", f"data.root={where}",
                                                 "data.calibration_size=16"]).data, 0)
        assert (len(splits.train), len(splits.val), len(splits.calibration)) == (100, 30, 16)
        assert splits.num_classes == 10
        assert splits.class_names == tuple(f"c{i}" for i in range(10))  # batches.meta's label_names
        expected = torch.from_numpy(test[b"data"].reshape(-1, 3, 32, 32))
        assert torch.equal(splits.val.images, expected)
        assert splits.val.labels.tolist() == test[b"labels"]


def test_cifar10_resizes_to_the_configured_size(cifar10_root):
    root, _ = cifar10_root
    splits = build_splits(load_config(None, ["data.name=cifar10", f"data.root={root}", "data.image_size=40"]).data, 0)
    assert tuple(splits.train.images.shape[1:]) == (3, 40, 40)


def test_cifar100_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    train = _write_batch(folder / "train", 40, b"fine_labels", 100, 1)
    _write_batch(folder / "test", 10, b"fine_labels", 100, 2)
    splits = build_splits(load_config(None, ["data.name=cifar100", f"data.root={tmp_path}"]).data, 0)
    assert splits.num_classes == 100 and splits.train.labels.tolist() == train[b"fine_labels"]
    assert splits.class_names == tuple(str(i) for i in range(100))  # no meta file: named by number
    with (folder / "meta").open("wb") as handle:
        pickle.dump({b"fine_label_names": [b"apple", *(b"n%d" % i for i in range(1, 100))]}, handle)
    splits = build_splits(load_config(None, ["data.name=cifar100", f"data.root={tmp_path}"]).data, 0)
    assert splits.class_names[:2] == ("apple", "n1")


def test_missing_or_wrong_cifar_root_is_a_data_error_naming_the_field(tmp_path):
    with pytest.raises(DataError, match="data.root: .* holds no cifar10 in the python-pickle layout"):
        build_splits(load_config(None, ["data.name=cifar10", f"data.root={tmp_path / 'nowhere'}"]).data, 0)
    with pytest.raises(DataError, match="data.root: dataset 'cifar10' needs a local folder"):
        build_splits(load_config(None, ["data.name=cifar10"]).data, 0)


def test_corrupt_cifar_batch_is_a_data_error(cifar10_root):
    root, _ = cifar10_root
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_2' is not a CIFAR pickle batch"):
        build_splits(load_config(None, ["data.name=cifar10", f"data.root={root}"]).data, 0)
