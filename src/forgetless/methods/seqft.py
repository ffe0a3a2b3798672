"""Sequential fine-tuning: train on each experience in turn, nothing else.

The lower bound every anti-forgetting method is measured against. Full fine-tuning or LoRA is a
model option (`model.lora.enabled`), not a method.
"""

from forgetless.core.config import Section
from forgetless.methods.hooks import Method
from forgetless.methods.registry import register


class SeqFTConfig(Section):
    """Sequential fine-tuning has no options of its own."""


@register("seqft", SeqFTConfig, summary="sequential fine-tuning (the baseline; no mitigation)")
class SeqFT(Method):
    pass
