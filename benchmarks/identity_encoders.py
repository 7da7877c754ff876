"""Identity encoders: dlib-file parse time, DlibResNet parity with dlib, forward cost on CPU.

    python benchmarks/identity_encoders.py --threads 1               # parse, build, batch 8
    python benchmarks/identity_encoders.py --threads 1 --arcface 50 100   # + iresnet (random)

Medians (and the fastest) over repeats, in wall time and in this process's CPU time. On a
shared machine use ``--threads 1``: with 2 OpenMP threads, a thread that waits for its
descheduled partner makes timings erratic. Parity against dlib runs when ``dlib``
(``pip install dlib-bin``) is importable.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def timed(fn, repeats: int) -> tuple[float, float, float]:
    fn()  # warm-up (first calls allocate and pick kernels)
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def report(label: str, fn, repeats: int) -> None:
    wall, fastest, cpu = timed(fn, repeats)
    print(f"{label}: median {wall * 1e3:.0f} ms wall (fastest {fastest * 1e3:.0f} ms), "
          f"{cpu * 1e3:.0f} ms CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arcface", type=int, nargs="*", default=[],
                        help="iresnet depths to time as well (random weights)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from lift_identity.dlib_format import parse_dlib_net
    from lift_identity.dlib_resnet import DlibResNet, packaged_weights
    from lift_identity.iresnet import IResNet

    data = packaged_weights().read_bytes()
    report(f"parse {len(data) / 2**20:.1f} MiB dlib file", lambda: parse_dlib_net(data),
           args.repeats)
    start = time.perf_counter()
    encoder = DlibResNet()
    print(f"DlibResNet() incl. parse: {time.perf_counter() - start:.2f} s")

    textures = torch.rand(args.batch, 3, 256, 256)

    def forward():
        with torch.no_grad():
            encoder(textures)

    def forward_backward():
        x = textures.clone().requires_grad_(True)
        encoder(x).square().sum().backward()

    report(f"DlibResNet batch {args.batch} forward (256^2 -> 150^2 crop)", forward, args.repeats)
    report(f"DlibResNet batch {args.batch} forward+backward", forward_backward, args.repeats)

    try:
        import dlib
    except ImportError:
        print("dlib not importable: parity skipped (pip install dlib-bin)")
    else:
        rng = np.random.default_rng(0)
        chips = rng.integers(0, 256, (args.batch, 150, 150, 3), dtype=np.uint8)
        reference = dlib.face_recognition_model_v1(encoder.weights_path)
        expected = np.array([np.array(d) for d in reference.compute_face_descriptor(list(chips))])
        with torch.no_grad():
            ours = encoder.embed(torch.from_numpy(chips).permute(0, 3, 1, 2).float() / 255)
        print(f"parity with dlib on {args.batch} random chips: max abs diff "
              f"{np.abs(ours.double().numpy() - expected).max():.2e}")

    for depth in args.arcface:
        net = IResNet(depth).eval().requires_grad_(False)
        chips = torch.rand(args.batch, 3, 112, 112)

        def arc_forward():
            with torch.no_grad():
                net(chips)

        report(f"iresnet{depth} batch {args.batch} forward (112^2)", arc_forward,
               max(1, args.repeats // 2))


if __name__ == "__main__":
    main()
