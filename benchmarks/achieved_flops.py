"""Achieved GFLOP/s of the generator's and the denoiser's steps against this machine's ceiling.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls and convolutions,
forward and backward; elementwise work is not counted, so the figure is a lower bound on the
work done), time is the median of ``--repeats`` runs after a warm-up, and the ceiling is the
3x3 convolution of ``benchmarks/machine.py`` measured in the same run. Networks: the shipped
quickstart configs (``configs/prior/stylegan2_quickstart.yaml``'s G at batch 8, a full
forward + backward; ``configs/upsample/resshift_train_inference.yaml``'s denoiser, a training
step on batch 4 of 64^2 crops and one sampling step of a 256^2 texture).

    python benchmarks/achieved_flops.py [--repeats 5] [--bf16]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]


def flops_and_time(fn, repeats: int) -> tuple[float, float]:
    with FlopCounterMode(display=False) as counter:
        fn()
    fn()  # warm-up (oneDNN primitives, allocator)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(counter.get_total_flops()), statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bf16", action="store_true", help="under bf16 autocast")
    args = parser.parse_args()

    from lift.config_compose import resolve_config
    from lift.spec import build
    from machine import ceilings, describe

    print(describe())
    ceiling = ceilings()["conv3x3_bf16" if args.bf16 else "conv3x3_fp32"]
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if args.bf16
                else contextlib.nullcontext())
    torch.manual_seed(0)
    prior = resolve_config(ROOT / "configs/prior/stylegan2_quickstart.yaml")["model"]["init_args"]
    generator = build(prior["generator"], "generator")
    ups = resolve_config(ROOT / "configs/upsample/resshift_train_inference.yaml")
    denoiser = build(ups["model"]["init_args"]["upsampler"]["init_args"]["denoiser"], "denoiser")

    z = torch.randn(8, generator.z_dim)

    def g_step():
        with autocast:
            img = generator.synthesize(generator.map(z), noise_mode="random")
        img.float().square().mean().backward()

    def d_train():
        x = torch.randn(4, denoiser.latent_channels, 64, 64)
        c = torch.randn(4, denoiser.condition_channels, 64, 64)
        with autocast:
            out = denoiser(x, torch.randint(0, 15, (4,)), c)
        out.float().square().mean().backward()

    @torch.no_grad()
    def d_sample():
        x = torch.randn(1, denoiser.latent_channels, 256, 256)
        c = torch.randn(1, denoiser.condition_channels, 256, 256)
        with autocast:
            denoiser(x, torch.tensor([7]), c)

    print(f"\n{'step':44s} {'GFLOP':>8s} {'s':>7s} {'GFLOP/s':>8s} {'of ceiling':>10s}")
    for name, fn in (("G_phone forward+backward, batch 8, 64^2", g_step),
                     ("denoiser training step, batch 4, 64^2", d_train),
                     ("denoiser sampling step, 256^2", d_sample)):
        flops, secs = flops_and_time(fn, args.repeats)
        rate = flops / secs / 1e9
        print(f"{name:44s} {flops / 1e9:8.2f} {secs:7.3f} {rate:8.1f} {rate / ceiling:9.0%}")
    print(f"\nceiling: conv3x3 {'bf16' if args.bf16 else 'fp32'} {ceiling:.0f} GFLOP/s "
          "(benchmarks/machine.py)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
