"""A search home's search.json as the driver writes it, for tests that need a home without a search."""

import json

from prunetune.home import SEARCH_FORMAT
from prunetune.spaces import build_search


def write_search_json(root, **extra):
    """``root/s/search.json`` of a search over ``pruning.criterion``; returns the job and the home folder."""
    job, _ = build_search({"name": "s", "model": {"name": "tiny_cnn"}, "storage": {"root": str(root)},
                           "search": {"space": {"pruning.criterion": {"choice": ["l1", "l2"]}}}})
    folder = root / "s"
    folder.mkdir()
    (folder / "search.json").write_text(json.dumps({"format": SEARCH_FORMAT, "name": "s", "job": job.to_dict(),
                                                    "num_samples": 1, **extra}))
    return job, folder
