"""Throughput of the synthetic phone/studio texture generator (lift.data.synth).

Prints full samples (phone + mask + studio) per second at 256^2, the cost of expression
textures, and the time to generate the whole ``quickstart`` profile in memory.

    python benchmarks/synth_throughput.py [--resolution 256] [--n 40] [--threads 1]

Wall-clock figures depend on the machine's load; CPU time (process time) is printed too.
"""

from __future__ import annotations

import argparse
import time

import torch

from lift.data.synth import PROFILES, TextureSynthesizer, iter_samples


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--n", type=int, default=40, help="subjects per measurement")
    ap.add_argument("--threads", type=int, default=1, help="TextureSynthesizer(num_threads=...)")
    ap.add_argument("--profile", default="quickstart")
    args = ap.parse_args()
    threads = None if args.threads <= 0 else args.threads

    synth = TextureSynthesizer(args.resolution, seed=0, num_threads=threads)
    synth.sample(10_000)  # warm-up
    print(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, generator threads {threads}")

    _, w, c = _timed(lambda: [synth.sample(i) for i in range(args.n)])
    print(
        f"full samples (phone+mask+studio) @ {args.resolution}^2: {args.n / w:6.1f} textures/s wall"
        f"  ({1000 * w / args.n:.1f} ms each; {1000 * c / args.n:.1f} ms CPU)"
    )
    _, w, c = _timed(lambda: [synth.sample(i, phone=False) for i in range(args.n)])
    print(f"studio only                        @ {args.resolution}^2: {args.n / w:6.1f} textures/s wall")
    _, w, c = _timed(lambda: [synth.sample(i, studio=False) for i in range(args.n)])
    print(f"phone + mask only                  @ {args.resolution}^2: {args.n / w:6.1f} textures/s wall")
    k = max(4, args.n // 4)
    _, w2, _ = _timed(lambda: [synth.sample(i, expressions=2) for i in range(k)])
    _, w0, _ = _timed(lambda: [synth.sample(i) for i in range(k)])
    print(f"one expression (phone-lit + studio GT): {1000 * (w2 - w0) / (2 * k):.1f} ms extra")

    prof = PROFILES[args.profile]
    samples, w, c = _timed(lambda: list(iter_samples(prof, seed=0, num_threads=threads)))
    n_tex = sum((s.phone is not None) + (s.studio is not None) + 2 * len(s.expressions) for s in samples)
    print(
        f"profile '{prof.name}' ({prof.num_subjects} subjects, {n_tex} textures @ {prof.resolution}^2) "
        f"in memory: {w:.1f} s wall, {c:.1f} s CPU"
    )


if __name__ == "__main__":
    main()
