"""A search home's search.json as the driver writes it, for tests that need a home without a search."""

import json

import pandas as pd

from prunetune.home import CHECKPOINT_MODEL, SEARCH_FORMAT, STORE_NAME
from prunetune.models.zoo import tiny_cnn
from prunetune.pruning.persist import save_pruned
from prunetune.spaces import build_search


def write_search_json(root, **extra):
    """``root/s/search.json`` of a search over ``pruning.criterion``; returns the job and the home folder."""
    job, _ = build_search({"name": "s", "model": {"name": "tiny_cnn"}, "storage": {"root": str(root)},
                           "search": {"space": {"pruning.criterion": {"choice": ["l1", "l2"]}}}})
    folder = root / "s"
    folder.mkdir(parents=True)
    (folder / "search.json").write_text(json.dumps({"format": SEARCH_FORMAT, "name": "s", "job": job.to_dict(),
                                                    "num_samples": 1, **extra}))
    return job, folder


def write_kept_step(root):
    """A home under ``root`` as the driver leaves it, with one kept step (trial 0 step 1); returns its model file."""
    _, folder = write_search_json(root)
    checkpoint = folder / "trial_t0" / "checkpoint_000000"  # where Ray keeps a trial's checkpoints
    save_pruned(tiny_cnn(num_classes=10), checkpoint / CHECKPOINT_MODEL)
    row = {"experiment": "s", "trial": 0, "trial_id": "t0", "step": 1, "accuracy": 0.9, "macs": 10, "mac_ratio": 0.5, "params": 20,
           "feasible": True, "checkpoint": str(checkpoint), "settings": json.dumps({"pruning.criterion": "l1"})}
    pd.DataFrame([row]).to_parquet(folder / STORE_NAME)
    return checkpoint / CHECKPOINT_MODEL
