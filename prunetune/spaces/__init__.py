"""YAML search spaces turned into Optuna define-by-run spaces (docs/search-spaces.md).

    config, space = load_search("examples/digits_search.yaml", overrides)
    OptunaSearch(space=space.define_by_run, ...)       # on the driver
    trial_config = space.apply(config, params)          # in the trainable

Modules: ``distributions`` (the kinds and their YAML form), ``parameters`` (a parameter and
its conditions), ``extract`` (finding distributions in a job), ``checks`` (everything
validated before Ray starts), ``space`` (``SearchSpace``), ``load`` (the entry points and
the default space in ``default.yaml``).
"""

from prunetune.spaces.distributions import Choice, Distribution, FloatRange, IntRange
from prunetune.spaces.load import build_search, default_space, load_search
from prunetune.spaces.parameters import Condition, Parameter
from prunetune.spaces.space import SearchSpace

__all__ = [
    "Choice",
    "Condition",
    "Distribution",
    "FloatRange",
    "IntRange",
    "Parameter",
    "SearchSpace",
    "build_search",
    "default_space",
    "load_search",
]
