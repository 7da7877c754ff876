"""The prior's learning curve: KID of G_ema against the real phone textures at every snapshot
of a prior run, with the real-vs-real floor and the blurred-real "blob" level, and one image
grid with a row of samples per snapshot (fixed latents), so that "does it draw faces yet, and
after how many images" is one command:

    python -m lift.evaluation.prior_curve runs/prior/stylegan2_cpu32 --profile cpu \\
        --eval-resolution 32 --out docs/results/cpu/prior_curve_cpu32

Snapshots are every ``*.ckpt`` under the run directory (``StageCheckpoint`` with
``every_n_train_steps`` and ``save_top_k: -1`` keeps one per interval), ordered by the images
the prior had seen. Priors of different resolutions compare at one ``--eval-resolution``
(samples and reals are area-resampled to it). The blur reference is scaled with it: σ =
``blur_sigma`` px at 64², so σ·r/64 px at r².
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from lift.atomic import atomic_write_text
from lift.evaluation import stage_quality as sq


def snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """``(images seen, path)`` of every checkpoint under ``run_dir``, fewest images first; of
    files with the same count (``last.ckpt`` and the final snapshot) the first by name."""
    out: dict[int, Path] = {}
    for path in sorted(run_dir.rglob("*.ckpt")):
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        if "seen_images" not in state:
            raise ValueError(f"{path}: not a prior-stage checkpoint (no seen_images buffer)")
        out.setdefault(int(state["seen_images"]), path)
    if not out:
        raise ValueError(f"no *.ckpt under {run_dir}")
    return sorted(out.items())


@torch.no_grad()
def curve(run_dir: Path, reals: torch.Tensor, net, *, eval_resolution: int, samples: int,
          blur_sigma: float = 2.0, grid_columns: int = 8, seed: int = 0,
          log=print) -> tuple[dict[str, Any], torch.Tensor]:
    """(record, grid rows): KID per snapshot, references, and ``[S+1, C, r, r]`` rows of
    samples (the first row: reals)."""
    from lift.checkpoints import load_prior

    reals = sq.area(reals, eval_resolution)
    f_real = sq.texture_features(net, reals)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(reals.shape[0], generator=gen)
    half = reals.shape[0] // 2
    sigma = blur_sigma * eval_resolution / 64
    record: dict[str, Any] = {
        "eval_resolution": eval_resolution, "num_real": int(reals.shape[0]),
        "num_fake": samples, "blur_sigma_px": sigma,
        "kid_real_halves": sq.kid(f_real[perm[:half]], f_real[perm[half:]], seed=seed),
        "kid_blurred_reals": sq.kid(f_real, sq.texture_features(
            net, sq.gaussian_blur(reals, sigma)), seed=seed),
        "snapshots": []}
    rows = [reals[:grid_columns]]
    for seen, path in snapshots(run_dir):
        t = time.perf_counter()
        generator, _ = load_prior(path)
        generator = generator.eval().requires_grad_(False)
        # the same latents for every snapshot (and as stage_quality's prior figures)
        fakes = sq.area(sq.prior_samples(generator, samples,
                                         torch.Generator().manual_seed(seed)), eval_resolution)
        k = sq.kid(f_real, sq.texture_features(net, fakes), seed=seed)
        record["snapshots"].append({"checkpoint": str(path), "images_seen": seen,
                                    "resolution": int(generator.resolution), "kid": k})
        rows.append(fakes[:grid_columns])
        log(f"{path.name}: {seen / 1000:.1f} kimg, KID x1e3 {1e3 * k['mean']:.2f} "
            f"± {1e3 * k['std']:.2f} [{time.perf_counter() - t:.0f} s]")
    return record, torch.cat(rows)


def markdown(record: dict[str, Any]) -> str:
    lines = ["| images seen | KID × 10³ |", "|---|---|"]
    for s in record["snapshots"]:
        lines.append(f"| {s['images_seen']:,} | {1e3 * s['kid']['mean']:.2f} ± "
                     f"{1e3 * s['kid']['std']:.2f} |")
    lines.append(f"| reference: real halves | {1e3 * record['kid_real_halves']['mean']:.2f} |")
    lines.append(f"| reference: blurred reals (σ = {record['blur_sigma_px']:g} px) | "
                 f"{1e3 * record['kid_blurred_reals']['mean']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lift.evaluation.prior_curve",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a prior run directory holding snapshots")
    p.add_argument("--profile", default="cpu", help="SyntheticSource profile of the reals")
    p.add_argument("--folder", type=Path, default=None,
                   help="a FolderSource root instead of the synthetic source")
    p.add_argument("--split", default="phone_train")
    p.add_argument("--eval-resolution", type=int, default=32)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--out", type=Path, required=True,
                   help="output stem: <out>.json, <out>.md, <out>.png")
    args = p.parse_args(argv)

    from lift.data import FolderSource, SyntheticSource

    source = (FolderSource(str(args.folder)) if args.folder is not None
              else SyntheticSource(profile=args.profile, seed=0))
    _, reals = sq.load_split(source, args.split, "phone", args.eval_resolution)
    record, rows = curve(args.run_dir, reals, sq.perceptual_net(),
                         eval_resolution=args.eval_resolution, samples=args.samples)
    record["source"] = source.describe()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(record, indent=1) + "\n")
    atomic_write_text(args.out.with_suffix(".md"), markdown(record))
    sq._save(torch.nn.functional.interpolate(rows, size=(96, 96), mode="nearest"),
             args.out.with_suffix(".png"))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
