"""Peak memory is a run's own, even when one process runs several."""

import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reset is Linux's")
def test_the_peak_starts_afresh_after_a_reset():
    """In a fresh process: a test worker's earlier allocations (cached pages, its own peaks)
    made the same steps read the old peak in CI."""
    import subprocess

    script = """
import torch
from forgetless.models.device import peak_memory_mb, reset_peak_memory
cpu = torch.device("cpu")
block = torch.ones(600 * 2**20 // 4); del block  # an earlier, higher peak
reset_peak_memory(cpu)
before = peak_memory_mb(cpu)
block = torch.ones(300 * 2**20 // 4)  # 300 MiB, touched
high = peak_memory_mb(cpu)
del block
after = peak_memory_mb(cpu)
reset_peak_memory(cpu)
print(before, high, after, peak_memory_mb(cpu))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout.split()
    before, high, after, reset = map(float, out)
    assert high >= before + 250
    assert after > high - 1  # a peak stays until reset (to the page: 300 MiB freed)
    assert reset < high - 250


def test_use_threads_sets_the_count_a_run_records_and_none_keeps_it():
    import torch

    from forgetless.models.device import machine, use_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        use_threads(1)
        assert torch.get_num_threads() == 1
        assert machine(torch.device("cpu"))["threads"] == 1
        use_threads(None)  # no --threads: the count stays as it is
        assert torch.get_num_threads() == 1
        use_threads(2)
        assert machine(torch.device("cpu"))["threads"] == 2
    finally:
        torch.set_num_threads(before)
