"""Search homes as the driver writes them, for tests that need a home without running a search."""

import json

import optuna
import pandas as pd

from prunetune.home import CHECKPOINT_MODEL, SEARCH_FORMAT, STORE_NAME
from prunetune.models.zoo import tiny_cnn
from prunetune.pruning.persist import save_pruned
from prunetune.results.store import Store, make_row
from prunetune.spaces import build_search
from prunetune.step_row import ROW_COLUMNS
from prunetune.study import STUDY_FILE, steps_key


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


def write_stored_home(root):
    """A home as the driver leaves it: search.json (space as data), a study of one trial, two stored steps."""
    job, folder = write_search_json(root, baseline=str(root / "none"))
    study = optuna.create_study(storage=f"sqlite:///{folder / STUDY_FILE}", study_name="s",
                                directions=["maximize", "minimize"])
    study.enqueue_trial({})
    study.tell(study.ask(), [0.9, 10.0])
    study.set_user_attr(steps_key(0), 2)
    store = Store(folder / STORE_NAME, write_share=1.0)
    result = {column: 0.5 for column in ROW_COLUMNS} | {"feasible": True, "is_best": False}
    for step in (1, 2):
        store.put(make_row("s", 0, "t0", result | {"step": step}, {"pruning.criterion": "l1"}, job, None))
    return folder
