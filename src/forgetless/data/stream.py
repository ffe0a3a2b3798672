"""config.data → Stream."""

from __future__ import annotations

from pathlib import Path

from forgetless.config import DataConfig
from forgetless.data.concept1k import concept1k_stream
from forgetless.data.concepts import concept_stream
from forgetless.data.orders import ORDERS
from forgetless.data.types import Stream
from forgetless.errors import DataError

DEFAULT_ORDER = {"classification": "i", "superni": "superni-1", "trace": "trace"}


def task_order(cfg: DataConfig) -> list[str]:
    """data.tasks, else the preset data.order, else the source's default order (jsonl: every
    file, alphabetically)."""
    if cfg.tasks is not None:
        return list(cfg.tasks)
    if cfg.order is not None:
        return list(ORDERS[cfg.source][cfg.order])
    if cfg.source == "jsonl":
        from forgetless.data.instructions import jsonl_task_names

        return jsonl_task_names(cfg)
    return list(ORDERS[cfg.source][DEFAULT_ORDER[cfg.source]])


def build_stream(cfg: DataConfig) -> Stream:
    if cfg.source == "concepts":
        return concept_stream(
            cfg.n_experiences, cfg.concepts_per_experience, cfg.facts_per_concept, cfg.seed
        )
    if cfg.source == "concept1k":
        return concept1k_stream(cfg.path, cfg.n_experiences, cfg.split_seed, cfg.max_concepts)
    if not Path(cfg.path or "").is_dir():
        raise DataError(f"{cfg.path}: data.path must be a directory for data.source "
                        f"'{cfg.source}'")
    tasks = task_order(cfg)
    if cfg.source == "classification":
        from forgetless.data.classification import classification_stream

        return classification_stream(cfg, tasks)
    from forgetless.data.instructions import instruction_stream

    return instruction_stream(cfg, tasks)
