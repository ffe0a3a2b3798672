"""`concept1k`: the published Concept-1K text file, split into steps as the paper does."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt

from forgetless.core.config import SourceConfig
from forgetless.data.concept1k import concept1k_stream
from forgetless.data.sources.registry import register
from forgetless.data.types import Stream


class Concept1kConfig(SourceConfig):
    source: Literal["concept1k"] = "concept1k"
    path: str
    """The Concept-1K dataset.txt (see docs/benchmarks.md for where to get it)."""
    n_experiences: PositiveInt = 3
    """Number of steps the concepts are split into (the paper: 10)."""
    split_seed: int = 1
    """Seed of `random.shuffle` over the concept list (1 = the published split)."""
    max_concepts: PositiveInt | None = None
    """Keep only the first N concepts of the shuffled order (quick runs)."""


@register("concept1k", Concept1kConfig, "Concept-1K: 1,023 novel concepts, instance-incremental")
def build(cfg: Concept1kConfig) -> Stream:
    return concept1k_stream(cfg.path, cfg.n_experiences, cfg.split_seed, cfg.max_concepts)
