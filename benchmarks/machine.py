"""What the machine can do, measured in the same run as a benchmark (imported by the others).

The CPU changes between sessions, and with it the ceiling: one AMD EPYC ran a 2048² matmul
at 87 GFLOP/s in fp32 and 199 in bf16, an Intel Xeon without bf16 instructions at 209 and 53.
So every benchmark prints the CPU, whether it has native bf16, and the fp32 / bf16 ceilings
of a matmul and a 3x3 convolution, and states its results as ratios.

    python benchmarks/machine.py
"""

from __future__ import annotations

import platform
import statistics
import time

import torch
import torch.nn.functional as F

from lift.precision import cpu_has_native_bf16


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _rate(fn, flops: float, repeats: int = 5) -> float:
    fn()  # warm-up (oneDNN primitive creation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return flops / statistics.median(times) / 1e9


def ceilings(device: str = "cpu") -> dict[str, float]:
    """GFLOP/s of a 2048² matmul and a 3x3 conv (64² x 128 ch, batch 8), fp32 and bf16.

    On a CPU without native bf16, bf16 is emulated and can run at ~1 GFLOP/s (seen on an AMD
    EPYC here): its figures then come from a 512² matmul and a batch-1 conv, once, so that the
    measurement takes seconds rather than ~10 minutes.
    """
    out = {}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    native = device == "cuda" or cpu_has_native_bf16()
    for dtype, tag in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        small = dtype == torch.bfloat16 and not native
        n, batch, repeats = (512, 1, 1) if small else (2048, 8, 5)
        a = torch.randn(n, n, device=device, dtype=dtype)
        out[f"matmul_{tag}"] = _rate(lambda: (a @ a, sync()), 2 * n ** 3, repeats)
        x = torch.randn(batch, 128, 64, 64, device=device, dtype=dtype)
        w = torch.randn(128, 128, 3, 3, device=device, dtype=dtype)
        out[f"conv3x3_{tag}"] = _rate(lambda: (F.conv2d(x, w, padding=1), sync()),
                                      2 * batch * 128 * 128 * 9 * 64 * 64, repeats)
    return out


def describe(device: str = "cpu") -> str:
    """One line: CPU, threads, torch, native bf16, the measured ceilings."""
    c = ceilings(device)
    name = torch.cuda.get_device_name() if device == "cuda" else cpu_name()
    bf16 = "yes" if (device == "cuda" or cpu_has_native_bf16()) else "no"
    g = {k: f"{v:.0f}" if v >= 10 else f"{v:.2f}" for k, v in c.items()}
    return (f"machine: {name}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
            f"native bf16: {bf16}; ceilings GFLOP/s: matmul fp32 {g['matmul_fp32']} "
            f"bf16 {g['matmul_bf16']}, conv3x3 fp32 {g['conv3x3_fp32']} "
            f"bf16 {g['conv3x3_bf16']}")


if __name__ == "__main__":
    print(describe("cuda" if torch.cuda.is_available() else "cpu"))
