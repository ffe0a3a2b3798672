"""Built-in methods, one module each; importing this package registers them."""

from forgetless.methods import replay, seqft  # noqa: F401
