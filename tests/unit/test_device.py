"""Peak memory is a run's own, even when one process runs several."""

import sys

import pytest
import torch

from forgetless.models.device import peak_memory_mb, reset_peak_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reset is Linux's")
def test_the_peak_starts_afresh_after_a_reset():
    cpu = torch.device("cpu")
    reset_peak_memory(cpu)
    before = peak_memory_mb(cpu)
    block = torch.ones(300 * 2**20 // 4)  # 300 MiB, touched
    high = peak_memory_mb(cpu)
    del block
    assert high >= before + 250
    assert peak_memory_mb(cpu) > high - 1  # a peak stays until reset (to the page: 300 MiB freed)
    reset_peak_memory(cpu)
    assert peak_memory_mb(cpu) < high - 250
