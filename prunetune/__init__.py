"""prunetune: search the best way to prune a convolutional network with Ray Tune and Optuna.

Layers, lowest first (a lower one never imports a higher one): ``config`` -> ``data``,
``models`` -> ``pruning`` -> ``pipeline`` -> ``search`` / ``spaces`` -> ``results``. ``results``
reads what ``search`` writes but never imports it: what both need (the home folder's
layout, the study, the report row's columns, the objectives, wrapped private APIs) lives
in low modules, ``home``, ``study``, ``step_row``, ``objectives``, ``internals``, that
import neither torch nor Ray.
"""

from prunetune.config import JobConfig, load_config
from prunetune.errors import ConfigError, DataError, ModelError, PrunetuneError, RunError, UserError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "JobConfig", "ModelError", "PrunetuneError", "RunError", "UserError",
           "__version__", "load_config"]
