"""Built-in methods, one module each; importing this package registers them."""

from forgetless.methods import (  # noqa: F401
    ewc,
    freeze,
    kif,
    lamol,
    lwf,
    multitask,
    replay,
    sam,
    self_replay,
    seqft,
)
