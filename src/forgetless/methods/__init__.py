"""Built-in methods, one module each; importing this package registers them."""

from forgetless.methods import ewc, lwf, replay, seqft  # noqa: F401
