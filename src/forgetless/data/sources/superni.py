"""`superni`: Super-NaturalInstructions task JSON files (the SAPT 15-task orders)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt

from forgetless.data.instructions import instruction_stream
from forgetless.data.sources.registry import register
from forgetless.data.sources.tasks import PerTaskCaps, task_order, task_root
from forgetless.data.types import Stream


class SuperNIConfig(PerTaskCaps):
    source: Literal["superni"] = "superni"
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """The seeded share of each task held out for testing (unless `max_test_per_task` fixes the
    number)."""
    superni_examples: NonNegativeInt = 0
    """Positive examples of the task shown after its definition in every prompt."""


@register("superni", SuperNIConfig, "SuperNI task files (<path>/<task>.json)")
def build(cfg: SuperNIConfig) -> Stream:
    task_root(cfg)
    return instruction_stream(cfg, task_order(cfg))
