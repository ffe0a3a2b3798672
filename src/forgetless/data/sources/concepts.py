"""`concepts`: the built-in stream of invented concepts (offline, deterministic)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from forgetless.core.config import SourceConfig
from forgetless.data.concepts import concept_stream
from forgetless.data.sources.registry import register
from forgetless.data.types import Stream


class ConceptsConfig(SourceConfig):
    source: Literal["concepts"] = "concepts"
    n_experiences: PositiveInt = 3
    """Number of experiences (steps)."""
    concepts_per_experience: PositiveInt = 8
    """Invented concepts per experience."""
    facts_per_concept: int = Field(4, ge=1, le=5)
    """Relation facts per concept (each gives one train and one test example)."""


@register("concepts", ConceptsConfig, "invented concepts with relation facts (built in, offline)")
def build(cfg: ConceptsConfig) -> Stream:
    return concept_stream(cfg.n_experiences, cfg.concepts_per_experience, cfg.facts_per_concept,
                          cfg.seed)
