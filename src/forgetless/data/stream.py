"""config.data → Stream."""

from __future__ import annotations

from forgetless.config import DataConfig
from forgetless.data.concept1k import concept1k_stream
from forgetless.data.concepts import concept_stream
from forgetless.data.types import Stream


def build_stream(cfg: DataConfig) -> Stream:
    if cfg.source == "concepts":
        return concept_stream(
            cfg.n_experiences, cfg.concepts_per_experience, cfg.facts_per_concept, cfg.seed
        )
    return concept1k_stream(cfg.path, cfg.n_experiences, cfg.split_seed, cfg.max_concepts)
