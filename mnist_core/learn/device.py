"""Where and how a run computes: the device, the precision (bf16 where the hardware runs it natively)
and the allocator policy of a training process. The engine, the evaluation cache, the command line
and the Home page all ask here."""

from __future__ import annotations

import ctypes

import torch

from .config import TrainConfig


class DeviceError(RuntimeError):
    """The device asked for is not on this machine; the message says what to ask for instead."""


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'.")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("device 'mps' was asked for but Apple's MPS is not available; use 'auto' or 'cpu'.")
    return torch.device(name)


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (/proc/cpuinfo); empty elsewhere."""
    global _CPU_FLAGS
    if _CPU_FLAGS is None:
        try:
            with open("/proc/cpuinfo") as fh:
                line = next((ln for ln in fh if ln.startswith(("flags", "Features"))), "")
            _CPU_FLAGS = frozenset(line.partition(":")[2].split())
        except OSError:
            _CPU_FLAGS = frozenset()
    return _CPU_FLAGS


_CPU_FLAGS: frozenset[str] | None = None
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 instructions that compute in bf16 natively


def native_bf16(device: torch.device) -> str | None:
    """Why this device computes bf16 natively (a sentence), or None if it would only emulate it."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return f"the GPU ({torch.cuda.get_device_name(device)}) runs bf16 natively"
        return None
    if device.type == "cpu":
        found = [f for f in BF16_CPU_FLAGS if f in cpu_flags()]
        return f"this CPU runs bf16 natively ({', '.join(found)})" if found else None
    return None


def choose_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """The precision a run trains in and why: "auto" is bf16 autocast where the hardware runs bf16
    natively (about 1.4x the fp32 throughput on such a CPU, same accuracy) and fp32 elsewhere
    (emulated bf16 is slower than fp32)."""
    native = native_bf16(device)
    if requested == "fp32":
        return "fp32", "fp32 as asked"
    if requested == "bf16":
        return "bf16", "bf16 as asked" + (
            "" if native else f" (emulated on this {device.type}: slower than fp32)"
        )
    if native:
        return "bf16", f"auto: {native}"
    where = (
        f"this CPU has no native bf16 ({' or '.join(BF16_CPU_FLAGS)})"
        if device.type == "cpu"
        else f"no native bf16 on {device.type}"
    )
    return "fp32", f"auto: {where}"


def run_precision(cfg: TrainConfig, device: torch.device | None = None) -> str:
    """What a run of `cfg` computes in on `device` (default: the one it trains on), "fp32" or "bf16":
    its training, and every evaluation of its model (validation, the test pass, a checkpoint's
    evaluation), so that the accuracy a run reports is the one its checkpoint shows later."""
    return choose_precision(cfg.precision, device or pick_device(cfg.device))[0]


def precision_note(cfg: TrainConfig) -> str:
    """The precision a run of `cfg` trains in here, with the reason: what its record shows."""
    return " · ".join(choose_precision(cfg.precision, pick_device(cfg.device)))


# glibc's malloc hands every block over 128 KiB-32 MiB back to the kernel when it is freed, so each
# training step's activations (a few MiB each) would be page-faulted in afresh at every step; a
# training process keeps such blocks in its heap for reuse instead (figures: docs/speed.md).
MALLOC_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest: bigger blocks are still mapped afresh
MALLOC_TRIM_THRESHOLD = 1 << 30  # the heap's free top is kept up to 1 GiB (under the run's peak)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)


def reuse_freed_memory() -> bool:
    """Make this process's allocator keep freed tensor memory for the next step (glibc only: true
    if it took effect). A process-wide setting; training processes are where it pays."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD)
    )
