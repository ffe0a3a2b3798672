"""Built-in methods, one module each; importing this package registers them."""

from forgetless.methods import seqft  # noqa: F401
