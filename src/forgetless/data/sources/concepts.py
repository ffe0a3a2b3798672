"""`concepts`: the built-in stream of invented concepts (offline, deterministic)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

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

    @model_validator(mode="after")
    def _check_size(self) -> ConceptsConfig:
        total = self.n_experiences * self.concepts_per_experience
        if total > MAX_CONCEPTS:
            raise ValueError(
                f"data.n_experiences × data.concepts_per_experience = {total:,} concepts; at "
                f"most {MAX_CONCEPTS:,} (the stream is built in memory; Concept-1K has 1,000)")
        return self


MAX_CONCEPTS = 100_000
"""Upper bound on the built-in stream's size: about a million examples, a few GB of memory."""


@register("concepts", ConceptsConfig, "invented concepts with relation facts (built in, offline)")
def build(cfg: ConceptsConfig) -> Stream:
    return concept_stream(cfg.n_experiences, cfg.concepts_per_experience, cfg.facts_per_concept,
                          cfg.seed)
