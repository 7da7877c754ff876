"""The ResShift denoiser's width and depth by measured quality per second of training.

Each variant of the quickstart denoiser (``UNetDenoiser``: ``block_out_channels`` x
``layers_per_block``) is trained with the recipes' upsampler settings (``configs/run/
quickstart.yaml``'s ``upsample_train_inference``: 64^2 crops, batch 4, lr 5e-4, EMA 0.99) for
the same wall-clock budget (Lightning's ``max_time``), each in a fresh ``lift fit`` subprocess,
one after the other. Then each samples the first ``--eval-n`` paired-test studio textures from
their area-downsampled 64^2 versions (T = 15, the phone gradient as condition) and is scored
with PSNR and ST-LPIPS-VGG (``lift.evaluation.stage_quality.upsampler_quality``) beside
bicubic. Equal budgets make the comparison the one a user faces: which network is best after
the time they can spend, and what it costs to sample.

    python benchmarks/denoiser_size.py [--budget-s 120] [--eval-n 4] [--profile cpu]
        [--variants 16,32,32x1 32,64,64x1 32,64,64x2 64,128,128x1]

Set ``LIFT_SYNTH_CACHE`` (e.g. to a ``lift run`` directory's ``synth_cache``) to reuse data
already generated. Run it on a quiet machine: the budget is wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "upsample" / "resshift_train_inference.yaml"
DENOISER = "model.init_args.upsampler.init_args.denoiser.init_args"
RECIPE_ARGS = {  # configs/run/quickstart.yaml's upsample_train_inference
    "data.init_args.crop_size": "64",
    "model.init_args.lr": "5.0e-4",
    "model.init_args.ema_decay": "0.99",
    "trainer.num_sanity_val_steps": "0",
    "trainer.check_val_every_n_epoch": "100000",
    "trainer.max_steps": "1000000",
    "trainer.max_epochs": "-1",
}


def parse_variant(text: str) -> tuple[list[int], int]:
    widths, _, depth = text.partition("x")
    return [int(c) for c in widths.split(",")], int(depth or 1)


def train(variant: str, budget_s: int, profile: str, out: Path) -> dict:
    widths, depth = parse_variant(variant)
    args = {**RECIPE_ARGS, "trainer.max_time": f"00:00:{budget_s // 60:02d}:{budget_s % 60:02d}",
            "trainer.default_root_dir": str(out), f"{DENOISER}.block_out_channels": str(widths),
            f"{DENOISER}.layers_per_block": str(depth)}
    cmd = [sys.executable, "-m", "lift.cli", "fit", "--config", str(CONFIG),
           "--config", str(ROOT / "configs" / "trainer" / "cpu.yaml")]
    if profile == "cpu":
        cmd += ["--config", str(ROOT / "configs" / "fragments" / "cpu_data.yaml")]
    cmd += [f"--{k}={v}" for k, v in args.items()]
    t0, c0 = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if proc.returncode:
        raise SystemExit(f"{variant}: lift fit failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    from lift.checkpoints import read_checkpoint

    ckpt = out / "last.ckpt"
    steps = int(read_checkpoint(ckpt)["global_step"])
    return {"checkpoint": ckpt, "steps": steps, "fit_wall_s": wall, "fit_cpu_s": cpu}


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+",
                        default=["16,32,32x1", "32,64,64x1", "32,64,64x2", "64,128,128x1"],
                        help="block_out_channels x layers_per_block (the default is 32,64,64x1)")
    parser.add_argument("--budget-s", type=int, default=120, help="training wall time each")
    parser.add_argument("--eval-n", type=int, default=4, help="paired-test textures sampled")
    parser.add_argument("--profile", choices=["quickstart", "cpu"], default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from machine import describe

    from lift.data import SyntheticSource
    from lift.evaluation.stage_quality import area, load_split, perceptual_net, upsampler_quality
    from lift.stages.pipeline import load_upsampler

    print(describe())
    from lift.run.runner import GLIBC_TUNABLES

    os.environ.setdefault("GLIBC_TUNABLES", GLIBC_TUNABLES)  # the stage subprocesses' (lift run)
    source = SyntheticSource(profile=args.profile, seed=0)  # LIFT_SYNTH_CACHE is honoured
    stems, studio = load_split(source, "paired_test", "studio", 256, limit=args.eval_n)
    _, phone = load_split(source, "paired_test", "phone", 256, limit=args.eval_n)
    mask = torch.cat([area(source.load(s, "mask")[None].float(), 256) for s in stems])
    net = perceptual_net()
    bicubic = upsampler_quality(None, studio, phone, 64, net)
    print(f"bicubic: {bicubic['psnr']:.2f} dB, LPIPS {bicubic['lpips']:.3f} "
          f"({len(stems)} textures)")
    rows = []
    with tempfile.TemporaryDirectory(prefix="denoiser_size_") as tmp:
        for variant in args.variants:
            fit = train(variant, args.budget_s, args.profile, Path(tmp) / variant.replace(",", "_"))
            model = load_upsampler(str(fit["checkpoint"])).eval()
            params = sum(p.numel() for p in model.parameters())
            q = upsampler_quality(model, studio, phone, 64, net, mask=mask)
            row = {"variant": variant, "parameters": params, "steps": fit["steps"],
                   "fit_wall_s": round(fit["fit_wall_s"], 1),
                   "fit_cpu_s": round(fit["fit_cpu_s"], 1),
                   "s_per_texture": round(q["seconds"] / q["n"], 2),
                   "psnr": round(q["psnr"], 2), "lpips": round(q["lpips"], 4)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{args.budget_s} s of training each, {len(stems)} paired-test textures, T = 15:")
    print("| denoiser | parameters | steps in budget | s / step | s / texture (sampling) | PSNR | "
          "ST-LPIPS |")
    print("|---|---|---|---|---|---|---|")
    print(f"| bicubic | – | – | – | – | {bicubic['psnr']:.2f} | {bicubic['lpips']:.3f} |")
    for r in rows:
        print(f"| {r['variant']} | {r['parameters'] / 1e6:.2f} M | {r['steps']} | "
              f"{args.budget_s / max(r['steps'], 1):.2f} | {r['s_per_texture']} | {r['psnr']} | "
              f"{r['lpips']} |")
    if args.json:
        args.json.write_text(json.dumps({"bicubic": {k: bicubic[k] for k in ("psnr", "lpips")},
                                         "budget_s": args.budget_s, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
