"""Multitask (joint) training: every experience's training data at once — the upper bound.

Not a continual method but the reference every continual run is read against: what the model
reaches when nothing has to be remembered because nothing is ever out of view. The run skips
training until the last experience, then trains on the union of all training sets (shuffled
together, `train.epochs` passes) and evaluates every experience once. Its accuracy matrix has
only the last row, so AA/MA/GA are defined and forgetting is not (there is no sequence to
forget along). `forgetless compare` shows it beside the sequential runs.

Cost: one training phase over all T experiences' data (the same examples seen as a sequential
run, in one shuffled pass structure); no extra memory.
"""

from __future__ import annotations

from forgetless.core.config import Section
from forgetless.methods.hooks import Method
from forgetless.methods.registry import register


class MultitaskConfig(Section):
    """Joint training has no options of its own: epochs, batch size and lr come from `train`."""


@register("multitask", MultitaskConfig, combines_with=("sam",),
          summary="joint training on all experiences at once (the upper bound; not continual)")
class Multitask(Method):
    joint = True
    """The loop skips experiences before the last one (no training, no evaluation)."""

    def expected_train_examples(self, experience, n_experiences, planned, seen):
        return seen + planned if experience == n_experiences - 1 else 0

    def train_examples(self, ctx, experience, examples):
        if experience.index < len(ctx.stream) - 1:
            return []
        return [ex for exp in ctx.stream.experiences for ex in exp.train]
