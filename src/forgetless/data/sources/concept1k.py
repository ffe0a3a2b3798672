"""`concept1k`: the published Concept-1K text file, split into steps as the paper does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import PositiveInt

from forgetless.core.config import SourceConfig
from forgetless.core.errors import DataError
from forgetless.data.concept1k import concept1k_stream
from forgetless.data.sources.registry import register
from forgetless.data.types import Stream


class Concept1kConfig(SourceConfig):
    source: Literal["concept1k"] = "concept1k"
    path: str | None = None
    """The Concept-1K dataset.txt, or the folder holding it (docs/benchmarks.md says where to get
    it); null: $CONCEPT1K_DIR."""
    n_experiences: PositiveInt = 3
    """Number of steps the concepts are split into (the paper: 10)."""
    split_seed: int = 1
    """Seed of `random.shuffle` over the concept list (1 = the published split)."""
    max_concepts: PositiveInt | None = None
    """Keep only the first N concepts of the shuffled order, then split (quick runs; the steps
    then hold other concepts than the published ones)."""
    concepts_per_step: PositiveInt | None = None
    """Keep the first m concepts of each step of the split (the published steps and order, each
    smaller: CPU-sized runs)."""


WHERE = ("get it from github.com/zzz47zzz/codebase-for-incremental-learning-with-llm "
         "(dataset/concept_1k/dataset.txt)")


def dataset_file(path: str | None) -> Path:
    """data.path, a folder holding dataset.txt, or $CONCEPT1K_DIR; a one-line error otherwise."""
    if path is None:
        env = os.environ.get("CONCEPT1K_DIR")
        if not env:
            raise DataError(f"data.path: not set and CONCEPT1K_DIR is not set; {WHERE} and pass "
                            f"--set data.path=FILE or export CONCEPT1K_DIR=FOLDER")
        path = env
    found = Path(path).expanduser()
    if found.is_dir():
        found = found / "dataset.txt"
    if not found.is_file():
        raise DataError(f"{found}: Concept-1K file not found; {WHERE}")
    return found


@register("concept1k", Concept1kConfig, "Concept-1K: 1,023 novel concepts, instance-incremental")
def build(cfg: Concept1kConfig) -> Stream:
    return concept1k_stream(dataset_file(cfg.path), cfg.n_experiences, cfg.split_seed,
                            cfg.max_concepts, cfg.concepts_per_step)
