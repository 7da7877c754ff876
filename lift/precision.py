"""Numeric precision: whether bf16 pays on this machine, and the ``bf16-auto`` trainer setting.

On a CPU with native bf16 instructions (AVX512-BF16 or AMX) ``bf16-mixed`` autocast can run
convolutions and matmuls about twice as fast as fp32; on one without them PyTorch emulates
bf16 and it is about 4x *slower*. So lift never picks bf16 blindly: ``trainer.precision:
bf16-auto`` (lift's own value, resolved by the CLI before Lightning sees it) becomes
``bf16-mixed`` where the hardware has bf16 (a CUDA device that supports it, or a CPU with the
instructions) and ``32-true`` elsewhere, and the CLI says which it chose and why.
"""

from __future__ import annotations

import functools

import torch

AUTO = "bf16-auto"
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    """True if the CPU executes bf16 natively (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def resolve_precision(precision, accelerator: str | None,
                      flags: frozenset[str] | None = None) -> tuple[object, str | None]:
    """``(precision Lightning gets, a log line or None)`` for a configured precision.

    ``bf16-auto`` resolves by the hardware; an explicit ``bf16-mixed`` / ``bf16-true`` on a CPU
    without native bf16 is kept (the user asked) but earns a warning line.
    """
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator in (None, "auto")
                                                and torch.cuda.is_available())
    if on_gpu:
        native = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        where = "this GPU"
    else:
        native = cpu_has_native_bf16(flags)
        where = "this CPU"
    if str(precision) == AUTO:
        if native:
            return "bf16-mixed", f"precision bf16-auto -> bf16-mixed: {where} has native bf16"
        return "32-true", (f"precision bf16-auto -> 32-true: {where} has no native bf16 "
                           f"(no {' / '.join(NATIVE_BF16_FLAGS)}), where bf16 runs ~4x slower")
    if str(precision).startswith("bf16") and not native:
        return precision, (f"precision {precision}: {where} has no native bf16; expect it to "
                           "run several times slower than 32-true (use bf16-auto)")
    return precision, None
