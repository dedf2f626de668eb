"""The tkp section: Top-K spatial kernel pruning (seed 002) and N:M sparsity of Linear layers.

TKP is on when ``topk`` (convs) or ``nm`` (Linear layers) is set; it runs as one more stage
after the channel schedule (or alone, with ``pruning.schedule.kind: none``). Every other
field only acts when it is on, and each is refused where it would change nothing
(``check_tkp_with_job`` for the rules that involve other sections; ``refuse_idle_tkp`` for
settings with TKP off, in a single run only: a search may turn TKP on per trial).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from prunetune import registry
from prunetune.config.base import Section, registered
from prunetune.errors import ConfigError, UserError

NM_PATTERN = re.compile(r"^(\d+):(\d+)$")


class TkpSettingError(UserError, ValueError):
    """A tkp rule broken; its message names the fields (a ValueError, so pydantic reports it at its field)."""


def parse_nm(text: str) -> tuple[int, int]:
    """'2:4' -> (2, 4)."""
    found = NM_PATTERN.match(text)
    if found is None:
        raise ValueError(f"nm {text!r} is not N:M (e.g. 2:4)")
    return int(found.group(1)), int(found.group(2))


class TkpConfig(Section):
    topk: int | None = Field(None, ge=1, description="positions kept in each k x k kernel of the TKP convs (those "
                             "with more than topk positions); null: convs untouched")
    nm: str | None = Field(None, description="N:M for Linear layers, e.g. '2:4': N non-zeros in every M "
                           "consecutive input weights; null: Linear layers untouched")
    depthwise: bool = Field(True, description="depthwise convs are TKP convs too (their kernels hold all the "
                            "spatial work of a MobileNet)")
    include: tuple[str, ...] = Field((), description="module-name patterns (fnmatch) added: layers left out by "
                                     "default, e.g. the output layer for nm, a depthwise conv with depthwise off")
    exclude: tuple[str, ...] = Field((), description="module-name patterns (fnmatch) removed")
    reg_type: registered(registry.TKP_REGULARISERS) = Field(
        "exponential", description="stage-1 penalty on the coefficients beyond each kernel's top K")
    beta: float = Field(3000.0, gt=0.0, description="weight of the stage-1 auxiliary loss (L = L_task + beta * "
                        "L_aux, L_aux a mean over kernels; seed 002's default)")
    alpha: float = Field(3.0, ge=0.0, description="falloff of the exponential penalty: c_j = exp(-alpha j) for "
                         "the j-th coefficient beyond the top K (seed 002's default)")
    stage1_epochs: int = Field(5, ge=0, description="stage 1: dense training with the auxiliary loss (0: mask at "
                               "once)")
    stage1_lr: float = Field(1e-3, gt=0.0, description="learning rate of stage 1 (seed 002's; it reshapes "
                             "kernels, a larger step than recovery's)")
    stage2_epochs: int = Field(10, ge=0, description="stage 2: fine-tuning with the hard masks on forward and "
                               "backward")
    stage2_lr: float | None = Field(None, gt=0.0, description="learning rate of stage 2 (default: the source "
                                    "step's recovery rate)")

    @field_validator("nm", mode="before")
    @classmethod
    def _quoted(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise TkpSettingError(f"got the number {value}: YAML reads an unquoted N:M as a base-60 number "
                                  "(2:4 is 124); quote it: nm: '2:4'")
        return value

    @field_validator("nm")
    @classmethod
    def _n_below_m(cls, value: str | None) -> str | None:
        if value is not None:
            n, m = parse_nm(value)
            if not 1 <= n < m:
                raise ValueError(f"nm {value!r} must keep 1 <= N < M of every M weights")
        return value

    @property
    def enabled(self) -> bool:
        return self.topk is not None or self.nm is not None

    @property
    def nm_pair(self) -> tuple[int, int] | None:
        return parse_nm(self.nm) if self.nm is not None else None

    def changed(self) -> list[str]:
        """The fields besides topk and nm that differ from their default."""
        return [name for name, field in type(self).model_fields.items()
                if name not in ("topk", "nm") and getattr(self, name) != field.get_default()]

    @model_validator(mode="after")
    def _settings_that_act(self) -> TkpConfig:
        if not self.enabled:
            return self  # refused for a single run (refuse_idle_tkp); a search's trials may turn TKP on
        changed = self.changed()
        penalty = registry.TKP_REGULARISERS.get(self.reg_type)
        ignored = [name for name in ("beta", "alpha") if name in changed and name not in penalty.parameters]
        if ignored:
            raise TkpSettingError(f"{' and '.join(ignored)} set but reg_type {self.reg_type} does not read "
                                  f"{'them' if len(ignored) > 1 else 'it'}")
        if penalty.penalises and self.stage1_epochs == 0:
            raise TkpSettingError(f"reg_type {self.reg_type} acts in stage 1, but stage1_epochs is 0: set "
                                  "stage1_epochs >= 1 or reg_type none")
        for stage in ("stage1", "stage2"):
            if f"{stage}_lr" in changed and getattr(self, f"{stage}_epochs") == 0:
                raise TkpSettingError(f"{stage}_lr is set but {stage}_epochs is 0: set {stage}_epochs >= 1 or remove "
                                      f"{stage}_lr")
        if self.topk is None and "depthwise" in changed:
            raise TkpSettingError("depthwise is set but topk is null: it chooses convs, and no conv is pruned")
        return self


def refuse_idle_tkp(job: Any) -> None:
    """For a job run as written (``load_config``): tkp settings with TKP off would change nothing.

    Not a schema rule: a search that samples ``tkp.topk`` (null or a K) fixes the stage
    settings in the tkp section for the trials that turn TKP on (docs/search-spaces.md).
    """
    changed = job.tkp.changed()
    if not job.tkp.enabled and changed:
        message = (f"{', '.join(changed)} set but topk and nm are both null, so TKP is off: set topk (convs) or nm "
                   "(Linear layers), or remove them")
        raise ConfigError([("tkp", message)])


def check_tkp_with_job(job: Any) -> None:
    """The rules between tkp and the other sections; ``job`` is a validated ``JobConfig``."""
    # A schedule's cut count does not depend on what the MAC-target solver returns.
    cuts = registry.SCHEDULES.get(job.pruning.schedule.kind)(job.pruning.schedule, lambda: 0.5)
    if cuts:
        return
    if not job.tkp.enabled:
        raise TkpSettingError(f"pruning.schedule.kind {job.pruning.schedule.kind} makes no channel steps and tkp is "
                              "off: nothing would be pruned; set tkp.topk / tkp.nm or choose a schedule")
    idle = [name for name, value in (("recovery.sparse_pretrain_epochs", job.recovery.sparse_pretrain_epochs),
                                     ("recovery.variance_entropy_lambda", job.recovery.variance_entropy_lambda),
                                     ("recovery.final_epochs", job.recovery.final_epochs)) if value]
    if idle:
        several = len(idle) > 1
        raise TkpSettingError(f"{', '.join(idle)} {'act' if several else 'acts'} on channel steps, and "
                              f"pruning.schedule.kind {job.pruning.schedule.kind} makes none: remove "
                              f"{'them' if several else 'it'}")
