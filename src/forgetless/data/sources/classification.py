"""`classification`: the five text-classification data sets (task- or class-incremental)."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt

from forgetless.data.classification import classification_stream
from forgetless.data.sources.registry import register
from forgetless.data.sources.tasks import TaskSourceConfig, task_order, task_root
from forgetless.data.types import Stream


class ClassificationConfig(TaskSourceConfig):
    source: Literal["classification"] = "classification"
    scenario: Literal["task", "class"] = "task"
    """"task" (task-incremental: the prompt names the data set's label set and scoring chooses
    among it) or "class" (class-incremental: one generic prompt, and every label seen so far is
    a candidate)."""
    label_words: dict[str, list[str]] | None = None
    """Replace a data set's label words (in class-index order), e.g.
    {ag_news: [world, sports, business, science]}."""
    max_train_per_class: PositiveInt | None = None
    """Training examples kept per class of each data set (seeded; null: all)."""
    max_test_per_class: PositiveInt | None = None
    """Test examples kept per class of each data set (seeded; null: all)."""


@register("classification", ClassificationConfig,
          "AG News, Yelp, Amazon, DBpedia, Yahoo CSVs (MbPA++ format), orders i-iv, O1-O3")
def build(cfg: ClassificationConfig) -> Stream:
    task_root(cfg)
    return classification_stream(cfg, task_order(cfg))
