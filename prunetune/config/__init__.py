"""The typed schema of a pruning job (one module per group of sections), and its loading.

``from prunetune.config import JobConfig, load_config`` is the public surface; the sections
live in ``base`` (what they share), ``inputs`` (data, model, baseline: what decides the
baseline), ``pruning``, ``recovery`` (recovery, teacher, stop), ``search`` (search, storage,
runtime, latency), ``kernel`` (tkp: top-K kernel and N:M pruning) and ``job`` (the whole job,
YAML, overrides, validation).
"""

from prunetune.config.base import SEED_MAX, Fraction, Section, registered
from prunetune.config.inputs import BaselineConfig, DataConfig, ModelConfig
from prunetune.config.kernel import TkpConfig
from prunetune.config.job import (BASELINE_FIELDS, JobConfig, apply_overrides, load_config, read_yaml, section_of,
                                  validate_config)
from prunetune.config.pruning import MacAwareConfig, PruningConfig, ScheduleConfig
from prunetune.config.recovery import RecoveryConfig, StopConfig, TeacherConfig
from prunetune.config.search import LatencyConfig, RuntimeConfig, SearchConfig, StorageConfig

__all__ = [
    "BASELINE_FIELDS", "SEED_MAX", "BaselineConfig", "DataConfig", "Fraction", "JobConfig", "LatencyConfig",
    "MacAwareConfig", "ModelConfig", "PruningConfig", "RecoveryConfig", "RuntimeConfig", "ScheduleConfig",
    "SearchConfig", "Section", "StopConfig", "StorageConfig", "TeacherConfig", "TkpConfig", "apply_overrides",
    "load_config", "read_yaml", "registered", "section_of", "validate_config",
]
