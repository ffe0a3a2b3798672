"""What the hardware can do and what a run used of it: data-sheet peaks for MFU, peak memory,
and the GPU matrix-product settings a run asks for."""

from __future__ import annotations

import os
import platform
import resource

import torch

PEAK_TFLOPS = {"H100": (989.0, 494.7, 67.0), "H200": (989.0, 494.7, 67.0),
               "A100": (312.0, 156.0, 19.5), "L40S": (362.0, 183.0, 91.6),
               "L4": (121.0, 60.0, 30.3), "A10": (125.0, 62.5, 31.2)}
"""Dense peak TFLOPS of some GPUs (SXM where there are several forms), from their data sheets:
(bf16 / fp16 tensor cores, TF32 tensor cores, fp32). L40S before L4: the first name contained in
the device's name wins."""


def peak_tflops(device: torch.device, precision: str, tf32: bool = False) -> float | None:
    """The device's peak for this precision (FORGETLESS_PEAK_TFLOPS overrides it); None where it
    is not known (CPUs, unlisted GPUs): no MFU is claimed then."""
    if os.environ.get("FORGETLESS_PEAK_TFLOPS"):
        return float(os.environ["FORGETLESS_PEAK_TFLOPS"])
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (half, tensor_fp32, fp32) in PEAK_TFLOPS.items():
        if key in name:
            return half if precision in ("bf16", "fp16") else tensor_fp32 if tf32 else fp32
    return None


def reset_peak_memory(device: torch.device) -> None:
    """Start the peak afresh, so that a run reports its own: one process may run several (a
    sweep without --jobs, the Python API). On a CPU, Linux resets the resident high-water mark
    through /proc/self/clear_refs; where that is not possible the peak stays the process's."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float:
    """The peak since `reset_peak_memory`: allocated GPU memory on a GPU, resident memory on a
    CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    # VmHWM is the high-water mark that clear_refs resets (reset_peak_memory); getrusage's
    # ru_maxrss is read only where /proc is not
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def machine(device: torch.device) -> dict:
    """What a run's numbers depend on beyond its config and seed: the processor, the instruction
    set torch's kernels use on it (AVX2 and AVX-512 kernels round differently), the thread
    count (it changes the order of sums) and the GPU. Runs that differ here give different
    numbers for the same config and seed."""
    return {"cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}


def use_threads(threads: int | None) -> None:
    """Give this process `threads` CPU threads (None: torch's default, every core). The count
    reorders float sums, so it is part of the machine a run records (`machine`)."""
    if threads:
        torch.set_num_threads(threads)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def use_tf32(enabled: bool) -> None:
    """fp32 matrix products and convolutions on TF32 tensor cores (Ampere and later GPUs), or
    not; nothing changes on a CPU."""
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled
