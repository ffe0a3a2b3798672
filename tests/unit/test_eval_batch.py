"""`eval.batch_size: auto`: halve on out-of-memory, keep the size that fitted."""

from types import SimpleNamespace

import pytest
import torch

from forgetless.core.config import EvalConfig
from forgetless.data.collate import encode
from forgetless.data.types import Example
from forgetless.eval.evaluator import CPU_AUTO_BATCH, with_fitting_batch
from forgetless.eval.scoring import score_teacher_forced


def context(batch_size, device="cuda"):
    return SimpleNamespace(config=SimpleNamespace(eval=EvalConfig(batch_size=batch_size,
                                                                   max_batch_size=64)),
                           accelerator=SimpleNamespace(device=torch.device(device)),
                           eval_batch_size=None)


def test_auto_halves_on_out_of_memory_keeps_what_fitted_and_scores_as_that_fixed_size(tiny):
    """A device that holds 12 rows (more raises CUDA's out-of-memory error after the first
    batch is ticked): auto tries 64, 32, 16, settles on 8, scores exactly as batch size 8
    does, takes back the progress of the failed tries, and starts the next pass at 8."""
    tok, model = tiny
    items = [encode(Example(f"u{i}", f"What is thing {i}?", "a fish" * (1 + i % 3)), tok,
                    "Q: {question}\nA:", 64) for i in range(20)]
    tried, ticks = [], []

    def score(batch_size, tick):
        tried.append(batch_size)
        if batch_size > 12:
            tick(1)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return score_teacher_forced(model, tok, items, batch_size, 8, tick)

    ctx = context("auto")
    scores = with_fitting_batch(ctx, score, ticks.append)
    assert tried == [64, 32, 16, 8] and ctx.eval_batch_size == 8
    assert sum(ticks) == len(items)  # every failed try's tick was taken back
    assert scores == score_teacher_forced(model, tok, items, 8, 8)
    tried.clear()
    with_fitting_batch(ctx, score, None)
    assert tried == [8]


def test_other_errors_pass_through_and_a_fixed_size_is_never_changed():
    def oom(batch_size, tick):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    def broken(batch_size, tick):
        raise ValueError("not memory")

    with pytest.raises(ValueError, match="not memory"):
        with_fitting_batch(context("auto"), broken, None)
    fixed = context(16)
    with pytest.raises(torch.OutOfMemoryError):
        with_fitting_batch(fixed, oom, None)
    assert fixed.eval_batch_size is None
    # down to batch size 1, then the error is the user's to see
    tiny_device = context("auto")
    with pytest.raises(torch.OutOfMemoryError):
        with_fitting_batch(tiny_device, oom, None)
    assert tiny_device.eval_batch_size == 1


def test_auto_on_a_cpu_is_the_fixed_default():
    sizes = []
    ctx = context("auto", device="cpu")
    with_fitting_batch(ctx, lambda b, t: sizes.append(b), None)
    assert sizes == [CPU_AUTO_BATCH] == [32]


@pytest.mark.parametrize("device, given, expected", [("cpu", "auto", CPU_AUTO_BATCH),
                                                      ("cuda", "auto", "auto"), ("cpu", 8, 8)])
def test_the_harness_gets_a_number_on_a_cpu_and_its_own_auto_on_a_gpu(monkeypatch, device,
                                                                      given, expected):
    """lm-eval's "auto" would try batches of 64 at the model's full context on a CPU."""
    pytest.importorskip("lm_eval")
    import lm_eval.models.huggingface as hf

    from forgetless.eval.harness import Harness

    seen = []

    class Stop(Exception):
        pass

    def fake_hflm(**kwargs):
        seen.append(kwargs["batch_size"])
        raise Stop

    monkeypatch.setattr(hf, "HFLM", fake_hflm)
    harness = Harness.__new__(Harness)
    harness.task_dict, harness.limit, harness.batch_size = {}, None, given
    with pytest.raises(Stop):
        harness.measure(None, None, torch.device(device))
    assert seen == [expected]
