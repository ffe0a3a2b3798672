"""Learning without Forgetting (distillation): keep the new model's answers close to the
previous model's on the new data.

Before every experience after the first, a frozen copy of the model is taken; during the
experience each micro-batch adds `alpha · T² · KL(previous_T ‖ current_T)` averaged over the
answer positions, with T the temperature. No old data is stored; the cost is one extra forward
pass per micro-batch and a second copy of the model in memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import NonNegativeFloat, PositiveFloat

from forgetless.core.config import Section
from forgetless.data.collate import IGNORE, forward_answer_logits
from forgetless.methods.hooks import Context, Method
from forgetless.methods.registry import register


class LwFConfig(Section):
    alpha: NonNegativeFloat = 1.0
    """Weight of the distillation term (0 = sequential fine-tuning)."""
    temperature: PositiveFloat = 2.0
    """Softmax temperature of both distributions; the term is scaled by T² (Hinton et al.)."""


@register("lwf", LwFConfig, summary="distillation to the previous model's outputs on new data")
class LwF(Method):
    config: LwFConfig

    def __init__(self, config: LwFConfig):
        super().__init__(config)
        self.teacher: torch.nn.Module | None = None

    def before_experience(self, ctx: Context, exp) -> None:
        self.teacher = None
        if exp.index == 0 or self.config.alpha == 0:
            return
        self.teacher = ctx.previous_model()

    def after_experience(self, ctx: Context, exp) -> None:
        self.teacher = None  # free the copy between experiences

    def extra_loss(self, ctx: Context, batch, outputs) -> torch.Tensor | None:
        if self.teacher is None:
            return None
        T = self.config.temperature
        with torch.no_grad():
            teacher_logits = forward_answer_logits(self.teacher, batch).logits
        mask = batch["labels"] != IGNORE
        student = F.log_softmax(outputs.logits[mask].float() / T, dim=-1)
        teacher = F.log_softmax(teacher_logits[mask].float() / T, dim=-1)
        kl = F.kl_div(student, teacher, log_target=True, reduction="batchmean")
        return self.config.alpha * T * T * kl
