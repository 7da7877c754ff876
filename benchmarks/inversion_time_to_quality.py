"""Time to quality of the batched W+ inverter against the reference projector schedule.

Inverting every phone texture is the expensive step of the method. This script measures:

1. throughput: optimisation steps of the inversion objective (G_phone synthesis + Eq. 1 with
   the configured perceptual distance + backward) at batch 1, 8, 32 and 64, as
   texture-steps/s and textures/s for a 1000-step inversion, with and without the glibc
   malloc tunables of FACTS.md (each in a fresh subprocess);
2. the reference: the reference projectors' schedule (1000 steps, lr 0.1, 5 % ramp-up,
   cosine ramp-down over the last 25 %, latent noise 0.05 w_std to 75 %), one texture at a
   time. Its time for N textures is N x 1000 x (batch-1 step time). Its quality (mean final
   Eq. 1 loss) is computed on a subset of ``--reference-subset`` textures; because a
   texture's result does not depend on its batch neighbours (tests/test_inversion.py), the
   subset is optimised batched, which gives the batch-1 run's codes to ~1e-5 in less time;
3. the fast run: the quickstart config's inverter (batch ``--batch``, continuous batching,
   its shorter schedule and per-texture early stopping) on all ``--textures`` held-out
   textures, timed end to end, and its mean final loss on the same subset and on all.

The ratio printed is fast wall time / reference time (target <= 0.25) together with the
two mean losses (the fast run must reach the reference's mean loss). Held-out textures:
the ``cpu`` synthetic profile drawn with another seed (subjects G_phone never saw).

    python benchmarks/inversion_time_to_quality.py [--checkpoint runs/prior/.../last.ckpt]

Without ``--checkpoint`` the generator is randomly initialised (said in the output).
Wall-clock figures depend on the machine's load; process CPU time is printed as well.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "invert" / "stylegan2_quickstart.yaml"
GLIBC = "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296"


def _init_args(block: dict) -> dict:
    return dict(block.get("init_args") or {})


def build(checkpoint: str | None, reference_steps: int = 1000, device: str = "cpu"):
    """Generator, objective, schedules and early stop exactly as the quickstart config."""
    from lift_perceptual.stlpips import STLPIPS
    from lift_stylegan2.networks import Generator

    from lift.inversion.checkpoint import load_generator_weights
    from lift.inversion.objective import InversionObjective
    from lift.inversion.schedule import ProjectorSchedule
    from lift.inversion.stopping import PlateauStop

    cfg = yaml.safe_load(CONFIG.read_text())["model"]["init_args"]
    gen = Generator(**_init_args(cfg["generator"]))
    if checkpoint:
        load_generator_weights(gen, checkpoint, ema=cfg["use_ema"])
    gen = gen.to(device).eval().requires_grad_(False)
    assert cfg["distance"]["class_path"].endswith("STLPIPS"), cfg["distance"]
    distance = STLPIPS(**_init_args(cfg["distance"])).to(device)
    objective = InversionObjective(distance, cfg["mse_weight"], cfg["perceptual_weight"],
                                   cfg["use_mask"])
    fast_schedule = ProjectorSchedule(**_init_args(cfg["schedule"]))
    reference = ProjectorSchedule(steps=reference_steps, lr=0.1, lr_rampup=0.05, lr_rampdown=0.25,
                                  noise_strength=0.05, noise_ramp=0.75)
    early = PlateauStop(**_init_args(cfg["early_stop"])) if cfg.get("early_stop") else None
    return gen, objective, fast_schedule, reference, early, cfg


def held_out_textures(num: int, resolution: int):
    from lift.data import SyntheticSource, TextureDataset

    ds = TextureDataset(SyntheticSource("cpu", seed=1), "phone_train", resolution=resolution)
    items = [ds[i] for i in range(num)]
    return ([it["stem"] for it in items], torch.stack([it["phone"] for it in items]),
            torch.stack([it["mask"] for it in items]))


def make_inverter(gen, objective, schedule, batch, early, cfg):
    from lift.inversion.codes import WPlusCode
    from lift.inversion.inverter import BatchedInverter

    return BatchedInverter(gen, objective, WPlusCode(), schedule, batch, early_stop=early,
                           adam_betas=tuple(cfg["adam_betas"]), adam_eps=cfg["adam_eps"],
                           w_stats_samples=cfg["w_stats_samples"], seed=cfg["seed"])


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def throughput(args) -> dict:
    """Seconds per optimisation step at each batch size (after one warm-up step)."""
    gen, objective, _, reference, _, cfg = build(args.checkpoint)
    stems, images, masks = held_out_textures(max(args.batches), gen.resolution)
    out = {}
    for b in args.batches:
        inv = make_inverter(gen, objective, reference, b, None, cfg)
        inv.w_stats  # noqa: B018  (computed once, outside the timing)
        inv.add(stems[:b], images[:b], masks[:b])
        inv._fill()
        inv._step()  # warm-up
        _, w, c = timed(lambda: [inv._step() for _ in range(args.throughput_steps)])
        out[b] = {"step_s": w / args.throughput_steps, "step_cpu_s": c / args.throughput_steps}
        print(f"  batch {b:3d}: {1000 * out[b]['step_s']:8.1f} ms/step, "
              f"{b / out[b]['step_s']:7.2f} texture-steps/s, "
              f"{b / out[b]['step_s'] / 1000:.4f} textures/s at 1000 steps", flush=True)
    return out


def run_throughput_subprocess(args, glibc: bool) -> dict:
    env = dict(os.environ)
    env.pop("GLIBC_TUNABLES", None)
    if glibc:
        env["GLIBC_TUNABLES"] = GLIBC
    cmd = [sys.executable, __file__, "--phase", "throughput", "--threads", str(args.threads),
           "--throughput-steps", str(args.throughput_steps),
           "--batches", *map(str, args.batches)]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    print(proc.stdout.split("@@")[0], end="")
    return {int(k): v for k, v in json.loads(proc.stdout.split("@@")[1]).items()}


def _reference(args, gen, objective, reference, cfg, stems, images, masks, k):
    """Batch-1 step time of the reference schedule, and its quality on ``k`` textures."""
    batch1 = make_inverter(gen, objective, reference, 1, None, cfg)
    batch1.w_stats  # noqa: B018
    batch1.add(stems[:1], images[:1], masks[:1])
    batch1._fill()
    batch1._step()
    _, w, c = timed(lambda: [batch1._step() for _ in range(args.throughput_steps * 5)])
    ref_step = w / (args.throughput_steps * 5)
    ref_step_cpu = c / (args.throughput_steps * 5)
    ref_time = args.textures * reference.steps * ref_step
    ref_cpu = args.textures * reference.steps * ref_step_cpu
    print(f"reference: batch-1 step {1000 * ref_step:.1f} ms -> {args.textures} textures x "
          f"{reference.steps} steps = {ref_time:.0f} s wall ({ref_cpu:.0f} s CPU)", flush=True)

    ref_inv = make_inverter(gen, objective, reference, k, None, cfg)
    ref_results, w_ref, _ = timed(lambda: ref_inv.invert(stems[:k], images[:k], masks[:k]))
    ref_loss = sum(r.loss for r in ref_results) / k
    print(f"reference quality on {k} textures ({reference.steps} steps, computed batched in {w_ref:.0f} s): "
          f"mean loss {ref_loss:.4f}, mse {sum(r.mse for r in ref_results) / k:.5f}, "
          f"perceptual {sum(r.perceptual for r in ref_results) / k:.4f}", flush=True)
    return ref_step, ref_step_cpu, ref_time, ref_cpu, ref_loss, [r.loss for r in ref_results]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="prior-stage checkpoint (else random G)")
    ap.add_argument("--textures", type=int, default=64)
    ap.add_argument("--reference-subset", type=int, default=8)
    ap.add_argument("--batch", type=int, default=None, help="fast run's batch (default: config)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    ap.add_argument("--throughput-steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reference-steps", type=int, default=1000, help="smoke tests only")
    ap.add_argument("--fast-steps", type=int, default=None, help="override the config's steps")
    ap.add_argument("--phase", choices=["all", "throughput"], default="all")
    ap.add_argument("--skip-glibc-comparison", action="store_true")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    ap.add_argument("--reuse-reference", default=None, metavar="JSON",
                    help="take throughput and reference figures from an earlier --out file "
                    "(same checkpoint, textures and threads) and run only the fast inverter")
    ap.add_argument("--early-stop", type=float, nargs=3, default=None,
                    metavar=("PATIENCE", "REL_TOL", "MIN_STEPS"),
                    help="override the config's early stopping with a PlateauStop")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    if args.phase == "throughput":
        print("@@" + json.dumps(throughput(args)))
        return

    print(f"torch {torch.__version__}, {args.threads} threads, GLIBC_TUNABLES "
          f"{'set' if os.environ.get('GLIBC_TUNABLES') else 'unset'} in the main process, "
          f"generator: {args.checkpoint or 'RANDOM INIT (no --checkpoint)'}", flush=True)
    results: dict = {"checkpoint": args.checkpoint, "threads": args.threads,
                     "glibc_tunables_main": bool(os.environ.get("GLIBC_TUNABLES"))}
    previous = json.loads(Path(args.reuse_reference).read_text()) if args.reuse_reference else None
    settings = [True] if args.skip_glibc_comparison else [False, True]
    results["throughput"] = {} if previous is None else previous["throughput"]
    for glibc in settings if previous is None else []:
        print(f"throughput, GLIBC_TUNABLES {'set' if glibc else 'unset'}:", flush=True)
        results["throughput"]["glibc" if glibc else "default"] = run_throughput_subprocess(args, glibc)

    gen, objective, fast_schedule, reference, early, cfg = build(args.checkpoint,
                                                                 args.reference_steps)
    stems, images, masks = held_out_textures(args.textures, gen.resolution)
    k = args.reference_subset
    if previous is not None:
        ref = previous["reference"]
        ref_step, ref_step_cpu, ref_loss = ref["step_s"], ref["step_cpu_s"], ref["mean_loss"]
        ref_time, ref_cpu, ref_losses, k = ref["time_s"], ref["cpu_s"], ref["losses"], ref["subset"]
        print(f"reference (from {args.reuse_reference}): {ref_time:.0f} s wall, {ref_cpu:.0f} s "
              f"CPU, mean loss {ref_loss:.4f} on {k} textures", flush=True)
    else:
        ref_step, ref_step_cpu, ref_time, ref_cpu, ref_loss, ref_losses = _reference(
            args, gen, objective, reference, cfg, stems, images, masks, k)
    if args.early_stop:
        from lift.inversion.stopping import PlateauStop

        patience, rel_tol, min_steps = args.early_stop
        early = PlateauStop(int(patience), rel_tol, int(min_steps))

    if args.fast_steps:
        from lift.inversion.schedule import ProjectorSchedule

        s = fast_schedule
        fast_schedule = ProjectorSchedule(args.fast_steps, s.lr, s.lr_rampup, s.lr_rampdown,
                                          s.noise_strength, s.noise_ramp)
    batch = args.batch or cfg["batch_size"]
    fast = make_inverter(gen, objective, fast_schedule, batch, early, cfg)
    fast_results, w_fast, c_fast = timed(lambda: (fast.w_stats, fast.invert(stems, images, masks))[1])
    sub_loss = sum(r.loss for r in fast_results[:k]) / k
    all_loss = sum(r.loss for r in fast_results) / len(fast_results)
    mean_steps = sum(r.steps for r in fast_results) / len(fast_results)
    ratio, ratio_cpu = w_fast / ref_time, c_fast / ref_cpu
    print(f"fast: batch {batch}, <= {fast_schedule.steps} steps, early stop {early is not None}: "
          f"{w_fast:.0f} s wall ({c_fast:.0f} s CPU), mean steps {mean_steps:.0f}; mean loss "
          f"{sub_loss:.4f} on the reference subset, {all_loss:.4f} on all {len(fast_results)}",
          flush=True)
    reached = sub_loss <= ref_loss
    print(f"RATIO fast / reference: {ratio:.3f} wall, {ratio_cpu:.3f} CPU "
          f"(target <= 0.25); reference mean loss {'REACHED' if reached else 'NOT reached'} "
          f"({sub_loss:.4f} vs {ref_loss:.4f})", flush=True)
    results.update(
        reference={"step_s": ref_step, "step_cpu_s": ref_step_cpu, "time_s": ref_time,
                   "cpu_s": ref_cpu, "subset": k, "mean_loss": ref_loss,
                   "losses": ref_losses},
        fast={"batch": batch, "steps": fast_schedule.steps,
              "early_stop": None if early is None else [early.patience, early.rel_tol,
                                                        early.min_steps],
              "wall_s": w_fast, "cpu_s": c_fast, "mean_steps": mean_steps,
              "mean_loss_subset": sub_loss, "mean_loss_all": all_loss,
              "losses": [r.loss for r in fast_results]},
        ratio_wall=ratio, ratio_cpu=ratio_cpu, reached=reached,
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
