"""Every use of a dependency's private API, each behind one small function.

pyproject.toml pins Ray and Optuna exactly; each function here was read against the
source of the versions in ``CHECKED_AGAINST`` and says why no public API does its job.
``tests/test_internals.py`` fails when an installed version differs or a private name
below has gone or changed shape: re-read the named function's source in the new version,
adjust the wrapper, then update ``CHECKED_AGAINST``.

Nothing here imports Ray or Optuna at import time: ``results/`` uses this module too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import optuna

CHECKED_AGAINST = {"ray": "2.60.0", "optuna": "5.0.0"}

# Ray 2.60.0 logs "Checkpoint successfully created at: ..." at INFO through this private
# module's logger (``logging.getLogger(__name__)``), once per checkpoint; no option turns it off.
RAY_CHECKPOINT_LOGGER = "ray.train._internal.storage"


def searcher_study(searcher: Any) -> optuna.Study:
    """The study a Ray ``OptunaSearch`` asks and tells.

    Ray 2.60.0: ``OptunaSearch._setup_study`` creates it as ``_ot_study`` with the
    searcher's sampler, ``save``/``restore`` pickle it with the searcher. There is no
    public accessor, and a second study object on the same storage would ask a second
    sampler, not the one whose state the searcher carries across a resume.
    """
    return searcher._ot_study


def quiet_checkpoint_log() -> None:
    """Ray's per-checkpoint INFO line off in this process (a trial's worker)."""
    logging.getLogger(RAY_CHECKPOINT_LOGGER).setLevel(logging.WARNING)


def hypervolume(losses: np.ndarray, reference: np.ndarray) -> float:
    """The hypervolume dominated by ``losses`` (every column minimised) up to ``reference``.

    Optuna 5.0.0: ``optuna._hypervolume.compute_hypervolume(loss_vals, reference_point,
    assume_pareto=False)``, the WFG implementation its multi-objective samplers use.
    Optuna exposes hypervolume publicly only as a plot (``plot_hypervolume_history``).
    """
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(losses, reference, assume_pareto=False))
