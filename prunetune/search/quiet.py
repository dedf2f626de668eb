"""Ray's and Optuna's own console output off while prunetune drives a search; prunetune prints its own.

Each line is turned off with the switch its library documents where there is one, only
around the call that would print it, and nothing that reports a failure is hidden (Ray's and Optuna's warnings
and errors still show; a failed trial gets prunetune's one line and keeps its traceback):

- Ray 2.60 logs "Token authentication is enabled for this Ray cluster ..." each time it
  starts a local cluster without ``RAY_AUTH_MODE`` (``internals.token_auth_notice_unlogged``,
  around the private Ray's ``ray.init`` only; a joined cluster's messages all show).
- Tune's new output engine prints, at every verbosity (0 included), a "Configuration for
  experiment" box (its "Number of trials 9223372036854775807" is ``num_samples=-1``), "View
  detailed results here" and "To visualize your results with TensorBoard, run: tensorboard
  --logdir <Ray's session folder>" (``TuneTerminalReporter.experiment_started``). Its legacy
  engine (``internals.TUNE_LEGACY_OUTPUT``) prints nothing at verbosity 0.
  ``verbose=2`` (Ray's own status tables) keeps the new engine.
- Tune's controller logs ~45 lines per failed trial ("Trial task failed for trial ...")
  unless ``TUNE_PRINT_ALL_TRIAL_ERRORS`` is 0; the traceback still goes to ``error.txt``.
- Ray's own CSV, JSON and TensorBoard loggers (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1``, a
  documented Tune variable): the driver passes ``scalars.ray_loggers`` instead, and with no
  TensorBoard logger of its own Ray prints no ``tensorboard --logdir`` into its temporary folder.
- Optuna's INFO lines: ``study.optuna_info_unlogged``.

The variables are read when ``Tuner.fit`` builds its controller and reporters, so they are
set around ``fit`` and restored after it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from prunetune.internals import TUNE_LEGACY_OUTPUT
from prunetune.study import optuna_info_unlogged


# Tune's documented variables (ray.tune.constants.TUNE_ENV_VARS) set while a search runs.
TUNE_QUIET = {"TUNE_PRINT_ALL_TRIAL_ERRORS": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1"}


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the block; each variable's earlier value (or absence) restored."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def library_output_off(verbose: int) -> Iterator[None]:
    """Tune's banners, box, per-failure tracebacks and own loggers and Optuna's INFO lines off while a search runs."""
    values = dict(TUNE_QUIET)
    if verbose < 2:
        values.update(TUNE_LEGACY_OUTPUT)
    with environment(values), optuna_info_unlogged():
        yield
