"""Encoder-initialised inversion against the reference schedule: time to the same Eq. 1 loss.

Held-out phone textures: the quickstart synthetic ``paired_test`` + ``unpaired_test`` splits
(``SyntheticSource('quickstart', 0)``, subjects the prior never saw) at the generator's
resolution. G_phone: the prior checkpoint (EMA weights).

1. reference: ``configs/invert/stylegan2_quickstart.yaml``'s settings (400 steps), all
   held-out textures in one batch; final mean Eq. 1 loss, wall and CPU time;
2. the encoder's one-off training (``configs/invert/encoder_quickstart.yaml``'s recipe),
   reported separately (``--cache-dir``: an existing cache is reused, so pass a fresh one to
   measure training; by default a temporary directory);
3. the encoder inverter (that config's settings) at several refinement lengths (``--steps``):
   final mean Eq. 1 loss and time, including the encoder's forward pass;
4. side by side: the cost of one optimisation step of each inverter (the same G_phone and
   objective; the encoder's adds the anchor) measured alternately ``--repeats`` times in this
   process, medians, so the printed time ratio does not depend on load changes between the
   long runs: ``ratio = (encoder forward + k x encoder step) / (400 x reference step)``;
5. per-texture latency: one texture, batch 1, encoder forward + the config's refinement.

    python benchmarks/inversion_encoder.py [--checkpoint runs/quickstart/stages/prior/seed0/last.ckpt]
        [--threads 1] [--steps 0 10 20 40] [--bank runs/quickstart/stages/invert/seed0/bank]

``--bank`` adds a variant finetuned on that bank's pairs (its phone textures from the quickstart
source, with their Eq. 1 codes). Wall-clock figures depend on the machine's load; CPU time is
printed as well.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "configs" / "invert" / "stylegan2_quickstart.yaml"
ENCODER = ROOT / "configs" / "invert" / "encoder_quickstart.yaml"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def settings_of(config: Path, **overrides):
    from lift.spec import build

    spec = yaml.safe_load(config.read_text())["model"]["init_args"]["settings"]
    spec = copy.deepcopy(spec)
    spec["init_args"].update(overrides)
    return build(spec, where=str(config))


def held_out(resolution: int):
    from lift.data import SyntheticSource, TextureDataset

    src = SyntheticSource("quickstart", 0)
    items = [it for split in ("paired_test", "unpaired_test")
             for it in TextureDataset(src, split, resolution=resolution)]
    return ([it["stem"] for it in items], torch.stack([it["phone"] for it in items]),
            torch.stack([it["mask"] for it in items]))


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def mean_loss(results) -> float:
    return sum(r.loss for r in results) / len(results)


def step_cost(inv, stems, images, masks, steps: int) -> tuple[float, float]:
    """Seconds (wall, CPU) per optimisation step of ``inv`` on these textures (after a warm-up)."""
    inv.add(stems, images, masks)
    inv._fill()
    inv._step()
    _, w, c = timed(lambda: [inv._step() for _ in range(steps)])
    inv._queue, inv._active = [], None
    return w / steps, c / steps


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(ROOT / "runs/quickstart/stages/prior/seed0/last.ckpt"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, nargs="+", default=[0, 10, 20, 40, 80])
    p.add_argument("--repeats", type=int, default=5, help="alternating step-cost repeats")
    p.add_argument("--cost-steps", type=int, default=5, help="steps per step-cost repeat")
    p.add_argument("--cache-dir", default=None, help="encoder cache (default: a fresh temp dir)")
    p.add_argument("--bank", default=None, help="also finetune on this bank's pairs")
    p.add_argument("--bank-steps", type=int, default=100)
    p.add_argument("--skip-reference", action="store_true",
                   help="time the reference by its step cost only (no 400-step run)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from lift.checkpoints import build_from_checkpoint
    from lift.inversion.encoder import EncoderInitialisedInverter, EncoderTraining
    from lift.spec import spec_of

    print(f"cpu: {cpu_name()}; torch {torch.__version__}, {args.threads} thread(s)")
    gen = build_from_checkpoint(args.checkpoint, "generator", "generator_ema").eval()
    gen.requires_grad_(False)
    stems, images, masks = held_out(gen.resolution)
    print(f"G_phone: {args.checkpoint} ({gen.resolution}^2, num_ws {gen.num_ws}); "
          f"{len(stems)} held-out textures (quickstart paired_test + unpaired_test)")

    reference = settings_of(REFERENCE)
    ref_steps = reference.schedule.steps
    cache = args.cache_dir or tempfile.mkdtemp(prefix="lift_encoders_")
    enc_settings = settings_of(ENCODER, cache_dir=cache)

    # 1. the reference run
    if not args.skip_reference:
        ref_inv = reference.inverter(gen)
        ref_inv.w_stats  # noqa: B018  (setup, not inversion)
        ref_res, ref_w, ref_c = timed(lambda: ref_inv.invert(stems, images, masks))
        ref_loss = mean_loss(ref_res)
        print(f"reference ({ref_steps} steps, batch {len(stems)}): mean Eq. 1 loss {ref_loss:.5f}, "
              f"{ref_w:.1f} s wall, {ref_c:.1f} s CPU")
    else:
        ref_loss = float("nan")

    # 2. the encoder's one-off training
    variants = {"samples": enc_settings}
    if args.bank:
        spec = spec_of(enc_settings.training)["init_args"]
        spec.update(bank=args.bank, bank_steps=args.bank_steps,
                    bank_source={"synthetic": "quickstart", "seed": 0})
        tuned = copy.copy(enc_settings)
        tuned.training = EncoderTraining(**spec)
        variants["samples+bank"] = tuned
    encoders = {}
    for name, s in variants.items():
        encoder, w, c = timed(lambda: s.trained_encoder(gen))
        encoders[name] = encoder
        stats = s.encoder_stats
        phases = ", ".join(f"{k} {v['cpu_s']:.0f} s CPU" for k, v in stats.items()
                           if isinstance(v, dict))
        print(f"encoder [{name}] {'trained' if stats['trained'] else 'loaded'} in {w:.1f} s wall, "
              f"{c:.1f} s CPU (one-off; {phases}); {stats['path']}")

    # 3. the encoder inverter at several refinement lengths
    from lift.inversion.schedule import ProjectorSchedule

    sched = spec_of(enc_settings.schedule)["init_args"]
    objective = enc_settings.objective()
    best: dict[str, int | None] = {}
    quality: dict[tuple[str, int], float] = {}
    for name, encoder in encoders.items():
        best[name] = None
        for k in args.steps:
            if k == 0:
                with torch.no_grad():
                    w0 = encoder(images, masks)
                    loss = float(objective(gen.synthesize(w0, noise_mode="const"), images,
                                           masks)["loss"].mean())
                print(f"  [{name}] encoder only: mean Eq. 1 loss {loss:.5f}")
                quality[(name, 0)] = loss
                continue
            inv = EncoderInitialisedInverter(
                gen, objective, enc_settings.code, ProjectorSchedule(**{**sched, "steps": k}),
                enc_settings.batch_size, encoder=encoder,
                anchor_weight=enc_settings.anchor_weight, adam_betas=enc_settings.adam_betas,
                adam_eps=enc_settings.adam_eps)
            res, w, c = timed(lambda: inv.invert(stems, images, masks))
            loss = mean_loss(res)
            quality[(name, k)] = loss
            reached = loss <= ref_loss
            if reached and best[name] is None:
                best[name] = k
            print(f"  [{name}] encoder + {k:3d} refinement steps: mean Eq. 1 loss {loss:.5f} "
                  f"({'<=' if reached else '>'} reference {ref_loss:.5f}), {w:.1f} s wall, "
                  f"{c:.1f} s CPU", flush=True)

    # 4. side by side: step costs, alternating
    ref_inv = reference.inverter(gen)
    ref_inv.w_stats  # noqa: B018
    enc_inv = enc_settings.inverter(gen)
    rw, rc, ew, ec, fw, fc = [], [], [], [], [], []
    for _ in range(args.repeats):
        a = step_cost(ref_inv, stems, images, masks, args.cost_steps)
        b = step_cost(enc_inv, stems, images, masks, args.cost_steps)
        _, w, c = timed(lambda: enc_inv.predict(images, masks))
        rw.append(a[0]), rc.append(a[1]), ew.append(b[0]), ec.append(b[1]), fw.append(w), fc.append(c)
    med = statistics.median
    print(f"step cost (batch {len(stems)}, medians of {args.repeats} alternating repeats): "
          f"reference {1000 * med(rw):.0f} ms wall / {1000 * med(rc):.0f} ms CPU, encoder "
          f"inverter {1000 * med(ew):.0f} / {1000 * med(ec):.0f} ms; encoder forward "
          f"{1000 * med(fw):.0f} / {1000 * med(fc):.0f} ms")
    ref_time_w, ref_time_c = ref_steps * med(rw), ref_steps * med(rc)
    config_steps = enc_settings.schedule.steps
    for name in encoders:
        for k in sorted({config_steps, *(s for s in args.steps if s)}):
            tw, tc = med(fw) + k * med(ew), med(fc) + k * med(ec)
            loss = quality.get((name, k))
            print(f"  [{name}] {k:3d} steps: time ratio {tw / ref_time_w:.4f} wall, "
                  f"{tc / ref_time_c:.4f} CPU (target <= 0.05); loss ratio "
                  f"{'n/a' if loss is None else f'{loss / ref_loss:.3f}'}")
        k = best[name]
        print(f"  [{name}] fewest measured steps reaching the reference loss: "
              f"{k if k is not None else 'none of ' + str(args.steps)}")

    # 5. per-texture latency, batch 1
    lat_w, lat_c = [], []
    for _ in range(args.repeats):
        inv = enc_settings.inverter(gen)  # loads the cached encoder (setup, excluded)
        _, w, c = timed(lambda: inv.invert(stems[:1], images[:1], masks[:1]))
        lat_w.append(w), lat_c.append(c)
    print(f"per-texture latency (batch 1, encoder + {config_steps} steps): "
          f"{1000 * med(lat_w):.0f} ms wall, {1000 * med(lat_c):.0f} ms CPU "
          f"(median of {args.repeats})")


if __name__ == "__main__":
    main()
