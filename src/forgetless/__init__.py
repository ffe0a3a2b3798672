"""forgetless: continual learning of language models — measure what a model forgets, and fix it."""

import os

# Never reach a model hub at run time: models come from local directories or the embedded wheel.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

from forgetless.api import load, run
from forgetless.core.config import RunConfig, load_config
from forgetless.core.results import Result

__version__ = "0.1.0"
__all__ = ["Result", "RunConfig", "load", "load_config", "run"]
