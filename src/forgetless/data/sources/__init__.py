"""Built-in data sources, one module each; importing this package registers them."""

from forgetless.data.sources import (  # noqa: F401
    classification,
    concept1k,
    concepts,
    corpus,
    hf,
    jsonl,
    superni,
    trace,
)
