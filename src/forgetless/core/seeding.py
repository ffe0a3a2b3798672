"""Seeds derived from the run's seed: every random choice (data order, buffers, samples, probe
directions) draws from its own stable sub-seed, so a choice does not shift when another one is
added, and every process derives the same value without communicating."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts: object) -> int:
    """A stable sub-seed for (seed, parts): the same on every process and every run."""
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def rng_state() -> tuple[dict, dict]:
    """Every global generator a training step may draw from (python, numpy, torch CPU, CUDA), as
    (tensors, JSON values) for a checkpoint: restoring it makes the next step draw the same."""
    import random

    import numpy as np
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available():
        tensors.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    version, internal, gauss = random.getstate()
    values = {"python": [version, list(internal), gauss],
              "numpy": [kind, int(pos), int(has_gauss), float(cached)]}
    return tensors, values


def set_rng_state(tensors: dict, values: dict) -> None:
    """Restore what `rng_state` returned."""
    import random

    import numpy as np
    import torch

    version, internal, gauss = values["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, pos, has_gauss, cached = values["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda.")),
                                       key=lambda k: int(k.split(".")[1]))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
