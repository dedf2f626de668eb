"""The prune-and-recover pipeline: ``run(config, report=callback)``, runnable without Ray."""

from prunetune.pipeline.losses import VarianceEntropy, distillation_loss, group_l21
from prunetune.pipeline.recovery import RecoveryResult, recover, recovery_lr
from prunetune.pipeline.rows import PHASES, RunResult, StepRow
from prunetune.pipeline.run import accuracy_threshold, run

__all__ = ["PHASES", "RecoveryResult", "RunResult", "StepRow", "VarianceEntropy", "accuracy_threshold",
           "distillation_loss", "group_l21", "recover", "recovery_lr", "run"]
