"""Built-in methods, one module each; importing this package registers them."""

from forgetless.methods import ewc, lamol, lwf, replay, sam, self_replay, seqft  # noqa: F401
