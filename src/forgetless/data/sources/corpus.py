"""`corpus`: plain text for language modelling, one domain cut into experiences.

Documents (one per line of the user's .txt files, or generated: the built-in `world` and
`arithmetic` domains of data/corpora.py) are joined `join` at a time into text examples; every
token of an example is trained on and scored (the NLL is the measure; exact-match accuracy of a
whole text is not meaningful). Each experience trains on its own documents; its test split is
held out, never trained on. This is what the pretraining study runs on: phase A is a `corpus`
stream of domain A, phase B one of domain B.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from forgetless.core.config import SourceConfig
from forgetless.data.corpora import check_domain, held_out_documents, training_documents
from forgetless.data.sources.registry import register
from forgetless.data.types import Example, Experience, Stream


class CorpusConfig(SourceConfig):
    source: Literal["corpus"] = "corpus"
    domain: str = "world"
    """"world", "arithmetic" (generated from `seed`), "python_docs" (the Python Language
    Reference's prose, human-written, shipped with Python), or a .txt file / directory of them
    (one document per non-empty line)."""
    experiences: PositiveInt = 1
    """Experiences the training documents are cut into, in order."""
    documents: PositiveInt = 1000
    """Training documents per experience."""
    test_documents: PositiveInt = 64
    """Held-out documents per experience (never trained on)."""
    join: int = Field(4, ge=1)
    """Documents per text example, joined by a space (longer examples give each token more
    context; `train.max_length` cuts an example at its end)."""


def examples(docs: list[str], join: int, prefix: str) -> list[Example]:
    return [Example(uid=f"{prefix}-{k}", question="", answer="",
                    text=" ".join(docs[i:i + join]))
            for k, i in enumerate(range(0, len(docs), join))]


@register("corpus", CorpusConfig, "plain text for language modelling: built-in domains or .txt")
def build(cfg: CorpusConfig) -> Stream:
    check_domain(cfg.domain, "data.domain")
    n_test = cfg.test_documents * cfg.experiences
    held = held_out_documents(cfg.domain, n_test, cfg.seed)
    train = training_documents(cfg.domain, cfg.documents * cfg.experiences, cfg.seed,
                               held_out=n_test)
    exps = []
    for e in range(cfg.experiences):
        tr = train[e * cfg.documents:(e + 1) * cfg.documents]
        te = held[e * cfg.test_documents:(e + 1) * cfg.test_documents]
        exps.append(Experience(e, examples(tr, cfg.join, f"{e}-train"),
                               examples(te, cfg.join, f"{e}-test"), name=cfg.domain))
    return Stream(f"corpus:{cfg.domain}", exps)
