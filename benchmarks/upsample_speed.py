"""Time and peak memory of the ResShift upsampler for one texture (Sect 3.2), on this CPU.

Each measurement runs in a fresh subprocess (so peak RSS belongs to it alone) with the network
of a shipped config (default ``configs/upsample/resshift_train_inference.yaml``, untrained:
speed and memory do not depend on the weights):

- ``quickstart``: 256^2 output from 64^2, whole texture, T = 15 steps;
- ``paper``: 1024^2 output from 256^2, tiled (256^2 tiles, overlap 64), T = 15 steps;
- ``paper-untiled`` (``--untiled``): 1024^2 in one pass, to show what tiling saves.

Peak memory is ``ru_maxrss`` at the end minus the resident set size just before sampling (the
model and the inputs already built): torch allocations are invisible to tracemalloc.

    python benchmarks/upsample_speed.py [--threads 2] [--steps 15] [--untiled] [--config PATH]
    python benchmarks/upsample_speed.py --bf16      # each case also under bf16 autocast

Wall-clock depends on the machine's load; process CPU time is printed too. The glibc malloc
setting of FACTS.md (``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...``) is passed through
from the environment if set; compare runs only under one setting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "upsample" / "resshift_train_inference.yaml"

CASES = {
    "quickstart": dict(size=256, tile_size=None, tile_overlap=64),
    "paper": dict(size=1024, tile_size=256, tile_overlap=64),
    "paper-untiled": dict(size=1024, tile_size=None, tile_overlap=64),
}


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def build_upsampler(config: Path):
    """The upsampler of a stage config, instantiated by jsonargparse as LightningCLI would."""
    import yaml
    from jsonargparse import ArgumentParser

    from lift.components import Upsampler

    spec = yaml.safe_load(config.read_text())["model"]["init_args"]["upsampler"]
    parser = ArgumentParser()
    parser.add_subclass_arguments(Upsampler, "upsampler")
    cfg = parser.parse_object({"upsampler": spec})
    return parser.instantiate_classes(cfg).upsampler


def measure_one(case: str, steps: int, threads: int, config: Path, bf16: bool = False) -> dict:
    import contextlib

    import torch

    torch.set_num_threads(threads)
    params = CASES[case]
    up = build_upsampler(config).eval()
    s = params["size"]
    lr_size = s // up.scale_factor
    g = torch.Generator().manual_seed(0)
    low = torch.rand(1, 3, lr_size, lr_size, generator=g)
    phone = torch.rand(1, 3, s, s, generator=g)
    # warm-up on a small input (first-call allocations and kernel selection)
    up.upsample(low[..., :16, :16], phone[..., :64, :64], num_inference_steps=1,
                generator=torch.Generator().manual_seed(0))
    base = rss_mib()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    wall, cpu = time.perf_counter(), time.process_time()
    with ctx:
        out = up.upsample(low, phone, generator=torch.Generator().manual_seed(0),
                          tile_size=params["tile_size"], tile_overlap=params["tile_overlap"],
                          num_inference_steps=steps)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if bf16:  # how far bf16 moves the output from fp32 (same noise)
        ref = up.upsample(low, phone, generator=torch.Generator().manual_seed(0),
                          tile_size=params["tile_size"], tile_overlap=params["tile_overlap"],
                          num_inference_steps=steps)
        max_diff = float((out.float() - ref).abs().max())
    else:
        max_diff = 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert out.shape == (1, 3, s, s)
    return dict(case=case + ("+bf16" if bf16 else ""), size=s, max_abs_diff_vs_fp32=max_diff, tile_size=params["tile_size"], steps=steps, threads=threads,
                wall_s=round(wall, 2), cpu_s=round(cpu, 2),
                s_per_step=round(wall / steps, 3),
                peak_mib_over_baseline=round(max(peak, peak_before) - base, 1),
                baseline_rss_mib=round(base, 1),
                params=sum(p.numel() for p in up.parameters()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--untiled", action="store_true", help="also run 1024^2 without tiling")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--bf16", action="store_true", help="also run each case under bf16 autocast")
    ap.add_argument("--one", choices=sorted(CASES), help=argparse.SUPPRESS)
    ap.add_argument("--one-bf16", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.one:
        print(json.dumps(measure_one(args.one, args.steps, args.threads, args.config,
                                     args.one_bf16)))
        return
    from machine import describe

    print(describe())

    cases = ["quickstart", "paper"] + (["paper-untiled"] if args.untiled else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    results = []
    for case, bf16 in [(c, b) for c in cases for b in ([False, True] if args.bf16 else [False])]:
        proc = subprocess.run(
            [sys.executable, __file__, "--one", case, "--steps", str(args.steps),
             "--threads", str(args.threads), "--config", str(args.config)]
            + (["--one-bf16"] if bf16 else []),
            env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"{case}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    print(f"config {args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config}, "
          f"{args.threads} threads, {args.steps} steps")
    print(f"{'case':<19}{'size':>6}{'tile':>6}{'wall s':>9}{'cpu s':>9}{'s/step':>8}{'peak MiB':>10}"
          f"{'max |bf16-fp32|':>17}")
    for r in results:
        print(f"{r['case']:<19}{r['size']:>6}{str(r['tile_size'] or '-'):>6}{r['wall_s']:>9}"
              f"{r['cpu_s']:>9}{r['s_per_step']:>8}{r['peak_mib_over_baseline']:>10}"
              f"{r['max_abs_diff_vs_fp32']:>17.4f}")
    by = {r["case"]: r for r in results}
    if "quickstart" in by and "paper" in by:
        q, p = by["quickstart"], by["paper"]
        print(f"paper/quickstart: time x{p['wall_s'] / q['wall_s']:.1f} for x16 the texels, "
              f"peak memory x{p['peak_mib_over_baseline'] / max(q['peak_mib_over_baseline'], 1):.1f}")
    if "paper-untiled" in by and "paper" in by:
        u, p = by["paper-untiled"], by["paper"]
        print(f"tiled/untiled at 1024^2: time x{p['wall_s'] / u['wall_s']:.2f}, "
              f"peak memory x{p['peak_mib_over_baseline'] / max(u['peak_mib_over_baseline'], 1):.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
