"""StyleGAN-W+ training iteration: before / after the exact savings, and fp32 / bf16, side by side.

"before" renders G_phone(w) and F(G_phone(w)) every step and G_studio(w) once per phase
(``source_cache_mb: 0``, ``reuse_fakes: false``: the earlier code path, the same math); "after"
caches G_phone's side per bank code and renders G_studio(w) once per step. Both run the
stage's real phases (D with lazy R1, then G with Eq. 3-6) on the quickstart networks, a prior
checkpoint and its bank, alternating, and report medians of per-iteration CPU and wall time
and the ratio. ``--bf16`` adds the "after" iteration under bf16 autocast.

    python benchmarks/translation_step.py --prior runs/quickstart/stages/prior/seed0/last.ckpt \
        --bank runs/quickstart/stages/invert/seed0/bank [--bf16] [--iterations 12 --repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

from lift.data import SyntheticSource
from lift_identity.dlib_resnet import DlibResNet
from lift_perceptual.stlpips import STLPIPS
from lift_stylegan2.finetune import StyleGANWPlus
from lift_stylegan2.samplers import WPlusBankSampler

from machine import describe

WEIGHTS = {"adv": 1.0, "r1": 10.0, "lpips_prior": 0.5, "paired": 1.0, "faceid": 10.0}


def build(prior: str, bank: str, fast: bool) -> StyleGANWPlus:
    return StyleGANWPlus(prior, WPlusBankSampler(bank), STLPIPS(net="alex"),
                         identity_encoder=DlibResNet(box=[0.20, 0.19, 0.63, 0.63]),
                         paired_bank=bank, r1_interval=4,
                         source_cache_mb=256.0 if fast else 0.0, reuse_fakes=fast)


def batches(resolution: int, batch: int, paired: int):
    src = SyntheticSource("quickstart", 0)
    splits = src.splits()

    def load(stems):
        return torch.stack([F.interpolate(src.load(s, "studio")[None], size=resolution,
                                          mode="area")[0] for s in stems])
    studio, pstems = splits["studio_train"], splits["paired_train"]
    k = 0
    while True:
        sel = [studio[(k * batch + i) % len(studio)] for i in range(batch)]
        psel = [pstems[(k * paired + i) % len(pstems)] for i in range(paired)]
        yield {"studio": load(sel), "paired_studio": load(psel), "paired_stem": psel}
        k += 1


def iteration(tr: StyleGANWPlus, optims: dict, batch: dict, step: int, bf16: bool) -> None:
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with ctx:
        outputs = tr.forward_step(batch)
    for name, phase in tr.phases().items():
        params = list(phase.parameters())
        others = [p for p in tr.parameters() if p.requires_grad and all(p is not q for q in params)]
        for p in others:  # as Lightning's toggle_optimizer
            p.requires_grad_(False)
        with ctx:
            terms = phase.losses(batch, outputs, step)
            loss = sum(WEIGHTS.get(k, 0.0) * v for k, v in terms.items())
        optims[name].zero_grad(set_to_none=True)
        loss.backward()
        optims[name].step()
        for p in others:
            p.requires_grad_(True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prior", default="runs/quickstart/stages/prior/seed0/last.ckpt")
    ap.add_argument("--bank", default="runs/quickstart/stages/invert/seed0/bank")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--paired-batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(describe())
    cases = {"before": (False, False), "after": (True, False)}
    if args.bf16:
        cases["after_bf16"] = (True, True)
    models = {}
    for name, (fast, _) in cases.items():
        torch.manual_seed(0)
        tr = build(args.prior, args.bank, fast)
        optims = {n: torch.optim.Adam(list(p.parameters()), lr=0.002, betas=(0.0, 0.99))
                  for n, p in tr.phases().items()}
        models[name] = (tr, optims)
    data = batches(models["before"][0].resolution, args.batch, args.paired_batch)
    times = {name: {"cpu": [], "wall": []} for name in cases}
    fixed = [next(data) for _ in range(args.iterations)]
    for rep in range(args.repeats):
        for name, (fast, bf16) in cases.items():
            tr, optims = models[name]
            iteration(tr, optims, fixed[0], 0, bf16)  # warm-up (and, for "after", the cache)
            t0, c0 = time.perf_counter(), time.process_time()
            for i, batch in enumerate(fixed):
                iteration(tr, optims, batch, i + 1, bf16)
            times[name]["wall"].append((time.perf_counter() - t0) / args.iterations)
            times[name]["cpu"].append((time.process_time() - c0) / args.iterations)
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    for name in cases:
        print(f"{name:11s} median s/iteration: cpu {med[name]['cpu']:.3f}  wall "
              f"{med[name]['wall']:.3f}  (repeats: {', '.join(f'{x:.3f}' for x in times[name]['cpu'])})")
    for name in [n for n in cases if n != "before"]:
        ratio = [b / a for b, a in zip(times["before"]["cpu"], times[name]["cpu"])]
        print(f"speed-up {name} / before: {statistics.median(ratio):.2f}x (cpu, median of "
              f"per-repeat ratios); wall {med['before']['wall'] / med[name]['wall']:.2f}x")


if __name__ == "__main__":
    main()
