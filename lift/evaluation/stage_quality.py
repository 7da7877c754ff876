"""Each stage on its own job, measured offline: the prior's samples, the inversion's codes, the
upsampler's super-resolution.

* **Prior**: KID (Bińkowski et al., ICLR 2018; unbiased MMD² with the cubic polynomial kernel,
  torchmetrics' ``poly_mmd``) between G_phone's samples and the phone textures it was trained
  on, in the feature space of a frozen perceptual network whose weights an installed package
  ships (ST-LPIPS VGG16, ``stlpips-pytorch``): each stage's unit-normalised activations (the
  LPIPS feature space) averaged over space and concatenated (1,472 numbers an image).
  Reported x 1000, as is usual for KID. Two disjoint halves of the real textures give the
  floor (≈ 0); a Gaussian blur of the real textures, colour right and detail gone, gives the
  "colour blobs" level a prior must get under.
* **Inversion**: G(w) against held-out phone textures over the visible texels (PSNR, ST-LPIPS
  VGG, a network other than Eq. 1's AlexNet), and how far the codes lie from G's W
  distribution: ``w_distance`` is the RMS over W+ rows and dimensions of
  ``(w - mean_W) / std_W`` (per-dimension statistics of mapped Gaussian z), about 1 for codes
  drawn from W itself; ``row_spread`` the RMS over dimensions of the rows' standard deviation
  in the same units (0 for a W code: all rows equal). Codes far out are the ones G_studio's
  finetuning sees least of when it samples the bank (Eq. 3-8).
* **Upsampler**: the studio texture area-downsampled to the GAN resolution and brought back by
  bicubic interpolation or by a trained upsampler (its own conditioning, the phone texture for
  Eq. 14), PSNR and ST-LPIPS VGG against the studio texture.

``python -m lift.evaluation.stage_quality RUN_DIR`` scores a ``lift run`` directory's stages for
each seed and writes ``RUN_DIR/tables/stage_quality.{json,md}`` and image grids under
``RUN_DIR/stage_quality/``; the run's report shows them (docs/results.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from lift.atomic import atomic_write_text
from lift.inversion.encoder import render

#: ST-LPIPS VGG16: ships with stlpips-pytorch, so every measure here works offline. Any
#: perceptual distance with ``features(x)`` (per-stage maps of images in [0, 1]) fits.
FEATURE_NET = {"class_path": "lift_perceptual.stlpips.STLPIPS", "init_args": {"net": "vgg"}}


def perceptual_net(spec: dict | None = None):
    from lift.spec import build

    return build(spec or FEATURE_NET, "stage_quality.feature_net").eval()


@torch.no_grad()
def texture_features(net, images: torch.Tensor, batch: int = 64, min_side: int = 64
                     ) -> torch.Tensor:
    """``[N, D]``: per layer, LPIPS's unit-normalised activations averaged over space; layers
    concatenated (each layer's block has norm <= 1, so the cubic kernel stays O(1); raw VGG
    activations are in the hundreds and make it explode). ``images`` ``[N,3,H,W]`` in [0,1]; smaller than ``min_side`` (VGG's five
    stages need it) they are upsampled bilinearly first."""
    if min(images.shape[-2:]) < min_side:
        scale = min_side / min(images.shape[-2:])
        images = F.interpolate(images.float(), scale_factor=scale, mode="bilinear",
                               align_corners=False)
    out = []
    for i in range(0, images.shape[0], batch):
        layers = net.features(images[i:i + batch].float())
        out.append(torch.cat([f.mean(dim=(2, 3)) for f in layers], dim=1))
    return torch.cat(out).double()


def kid(real: torch.Tensor, fake: torch.Tensor, subsets: int = 50, subset_size: int = 200,
        seed: int = 0) -> dict[str, float]:
    """KID of feature sets ``[N, D]``: mean and std of the unbiased polynomial MMD² over
    ``subsets`` random subsets of ``subset_size`` (capped at the smaller set)."""
    from torchmetrics.image.kid import poly_mmd

    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples a set, got {real.shape[0]} and "
                         f"{fake.shape[0]}")
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(subsets):
        r = real[torch.randperm(real.shape[0], generator=gen)[:size]]
        f = fake[torch.randperm(fake.shape[0], generator=gen)[:size]]
        values.append(float(poly_mmd(r, f)))
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))
    return {"mean": mean, "std": std, "subset_size": size, "subsets": subsets}


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(images.shape[1], 1, 1, 1)
    pad = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(pad, k, groups=images.shape[1])
    return F.conv2d(out, k.transpose(2, 3), groups=images.shape[1])


def area(images: torch.Tensor, resolution: int) -> torch.Tensor:
    if images.shape[-1] == resolution:
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="area")


def load_split(source, split: str, kind: str, resolution: int, limit: int | None = None
               ) -> tuple[list[str], torch.Tensor]:
    stems = list(source.splits().get(split, []))[:limit]
    if not stems:
        raise ValueError(f"split {split!r} of {source.describe()} has no textures")
    return stems, torch.cat([area(source.load(s, kind)[None].float(), resolution)
                             for s in stems])


@torch.no_grad()
def prior_samples(generator, samples: int, gen: torch.Generator) -> torch.Tensor:
    """``samples`` textures of G in [0, 1] (psi = 1, const noise), latents drawn from ``gen``
    in chunks of 64: the draws of the measured figures."""
    z = torch.cat([torch.randn(min(64, samples - i), generator.z_dim, generator=gen)
                   for i in range(0, samples, 64)])
    return render(generator, generator.map(z))


@torch.no_grad()
def prior_quality(generator, reals: torch.Tensor, net, samples: int = 1000, seed: int = 0,
                  blur_sigma: float = 2.0) -> dict[str, Any]:
    """KID of G's samples (psi = 1, const noise) against ``reals`` ``[N,3,r,r]``, with the
    real-vs-real floor and the blurred-real "blob" level; ``"samples"``: the first 64."""
    gen = torch.Generator().manual_seed(seed)
    fakes = prior_samples(generator, samples, gen)
    f_real, f_fake = texture_features(net, reals), texture_features(net, fakes)
    half = reals.shape[0] // 2
    perm = torch.randperm(reals.shape[0], generator=gen)
    f_blur = texture_features(net, gaussian_blur(reals, blur_sigma))
    return {
        "kid": kid(f_real, f_fake, seed=seed),
        "kid_real_halves": kid(f_real[perm[:half]], f_real[perm[half:]], seed=seed),
        "kid_blurred_reals": kid(f_real, f_blur, seed=seed),
        "blur_sigma": blur_sigma, "num_real": int(reals.shape[0]), "num_fake": samples,
        "samples": fakes[:64],
    }


def w_space_statistics(generator, samples: int = 10000, seed: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and std of W (``samples`` mapped Gaussian z)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        w = torch.cat([generator.map(torch.randn(min(2048, samples - i), generator.z_dim,
                                                 generator=gen))[:, 0]
                       for i in range(0, samples, 2048)]).double()
    return w.mean(0), w.std(0)


def code_distances(codes: torch.Tensor, w_mean: torch.Tensor, w_std: torch.Tensor
                   ) -> dict[str, float]:
    """``codes`` ``[N, num_ws, w_dim]``: ``w_distance`` and ``row_spread`` (module doc)."""
    u = (codes.double() - w_mean) / w_std
    return {"w_distance": float(u.square().mean().sqrt()),
            "row_spread": float(u.std(dim=1, unbiased=False).square().mean().sqrt())}


def masked_psnr(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per texture PSNR over the texels where ``mask`` (``[N,1,H,W]``) is set."""
    m = torch.ones_like(x[:, :1]) if mask is None else mask
    mse = ((x - y).square() * m).sum(dim=(1, 2, 3)) / (m.sum(dim=(1, 2, 3)) * x.shape[1])
    return 10 * torch.log10(1 / mse.clamp_min(1e-12))


@torch.no_grad()
def reconstruction(generator, codes: torch.Tensor, targets: torch.Tensor,
                   masks: torch.Tensor | None, net) -> dict[str, float]:
    """G(codes) against ``targets``: PSNR and ST-LPIPS over the visible texels."""
    images = render(generator, codes.float())
    m = None if masks is None else (masks >= 0.5).float()
    psnr = masked_psnr(images, targets, m)
    a, b = (images, targets) if m is None else (images * m, targets * m)
    lp = torch.cat([net(a[i:i + 64], b[i:i + 64]) for i in range(0, a.shape[0], 64)])
    return {"psnr": float(psnr.mean()), "lpips": float(lp.mean()), "n": int(images.shape[0])}


def invert_codes(generator, settings, stems: Sequence[str], images: torch.Tensor,
                 masks: torch.Tensor | None) -> tuple[torch.Tensor, float]:
    """Codes of ``images`` by ``settings`` (an InversionSettings); (codes, seconds)."""
    start = time.perf_counter()
    results = settings.inverter(generator).invert(list(stems), images, masks)
    return torch.stack([r.w_plus for r in results]), time.perf_counter() - start


@torch.no_grad()
def upsampler_quality(upsampler, studio: torch.Tensor, phone: torch.Tensor, resolution: int,
                      net, seed: int = 0, bf16: bool = False,
                      mask: torch.Tensor | None = None) -> dict[str, Any]:
    """``upsampler`` (None: bicubic) on the area-downsampled ``studio`` textures; ``mask``:
    the phone textures' visibility (for upsamplers that mask their gradient condition)."""
    low = area(studio, resolution)
    start = time.perf_counter()
    if upsampler is None:
        out = F.interpolate(low, size=studio.shape[-2:], mode="bicubic",
                            align_corners=False).clamp(0, 1)
    else:
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16
                    else contextlib.nullcontext())
        outs = []
        with autocast:
            for i in range(studio.shape[0]):
                gen = torch.Generator().manual_seed(seed + i)
                m = None if mask is None else mask[i:i + 1]
                outs.append(upsampler.upsample(low[i:i + 1], phone[i:i + 1], mask=m,
                                               generator=gen).float().clamp(0, 1))
        out = torch.cat(outs)
    seconds = time.perf_counter() - start
    psnr = masked_psnr(out, studio, None)
    lp = torch.cat([net(out[i:i + 8], studio[i:i + 8]) for i in range(0, out.shape[0], 8)])
    return {"psnr": float(psnr.mean()), "lpips": float(lp.mean()), "n": int(studio.shape[0]),
            "seconds": seconds, "outputs": out[:4]}


# --- a lift run directory ---------------------------------------------------------------------

def _grid(images: torch.Tensor, columns: int = 8) -> torch.Tensor:
    n, c, h, w = images.shape
    rows = math.ceil(n / columns)
    canvas = torch.ones(c, rows * h, columns * w)
    for i in range(n):
        r, k = divmod(i, columns)
        canvas[:, r * h:(r + 1) * h, k * w:(k + 1) * w] = images[i]
    return canvas


def _save(images: torch.Tensor, path: Path, columns: int = 8) -> str:
    from lift.report.images import display_array, save_png

    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(display_array(_grid(images.float().cpu(), columns)), path)
    return str(path)


def _strip(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if not isinstance(v, torch.Tensor)}
    return obj


def evaluate_stages(run_dir: Path, seeds: Sequence[int], source, *, samples: int = 1000,
                    w_inversion: Mapping[str, Any] | None = None, upsamplers: Sequence[str] = (
                        "upsample_train_inference", "upsample_vanilla", "upsample_srresnet"),
                    upsample_split: str = "paired_test", bf16: bool = False,
                    log=print) -> dict[str, Any]:
    """Every stage of ``run_dir`` for each seed (module doc); ``w_inversion``: an inversion
    config's settings spec to compare W with W+ from the same start (first seed only)."""
    from lift.checkpoints import load_prior
    from lift.latent_bank import LatentBank
    from lift.spec import build
    from lift.stages.pipeline import load_upsampler

    net = perceptual_net()
    images_dir = run_dir / "stage_quality"
    out: dict[str, Any] = {"feature_net": "ST-LPIPS vgg (stlpips-pytorch)",
                           "source": source.describe(), "seeds": {}}
    for seed in seeds:
        stages = run_dir / "stages"
        res: dict[str, Any] = {}
        prior_ckpt = stages / "prior" / f"seed{seed}" / "last.ckpt"
        generator, _ = load_prior(prior_ckpt)
        generator = generator.eval().requires_grad_(False)
        r = int(generator.resolution)
        _, reals = load_split(source, "phone_train", "phone", r)
        t = time.perf_counter()
        prior = prior_quality(generator, reals, net, samples=samples, seed=seed)
        prior["grid"] = _save(prior["samples"], images_dir / f"prior_samples_seed{seed}.png")
        prior["reals_grid"] = _save(reals[:64], images_dir / f"prior_reals_seed{seed}.png")
        log(f"seed {seed} prior: KID {prior['kid']['mean']:.4f} (real halves "
            f"{prior['kid_real_halves']['mean']:.4f}, blurred reals "
            f"{prior['kid_blurred_reals']['mean']:.4f}) [{time.perf_counter() - t:.0f} s]")
        res["prior"] = prior

        w_mean, w_std = w_space_statistics(generator, seed=seed)
        stems, phone = load_split(source, "paired_test", "phone", r)
        more, phone_u = load_split(source, "unpaired_test", "phone", r)
        stems, phone = stems + more, torch.cat([phone, phone_u])
        masks = torch.cat([area(source.load(s, "mask")[None].float(), r) for s in stems])
        bank = LatentBank.open(stages / "invert_test" / f"seed{seed}" / "bank")
        codes = torch.stack([bank.get(s) for s in stems])
        inv = {"bank": {**reconstruction(generator, codes, phone, masks, net),
                        **code_distances(codes, w_mean, w_std)}}
        if w_inversion is not None and seed == seeds[0]:
            from lift.inversion.codes import WCode, WPlusCode

            for name, code in (("optimised_wplus", WPlusCode()), ("optimised_w", WCode())):
                settings = build(dict(w_inversion), "w_inversion", code=code)
                found, secs = invert_codes(generator, settings, stems, phone, masks)
                inv[name] = {**reconstruction(generator, found, phone, masks, net),
                             **code_distances(found, w_mean, w_std), "seconds": secs}
                log(f"seed {seed} inversion {name}: {inv[name]['psnr']:.2f} dB "
                    f"[{secs:.0f} s]")
        sample = torch.randn(256, generator.z_dim, generator=torch.Generator().manual_seed(seed))
        inv["w_samples"] = code_distances(generator.map(sample).detach(), w_mean, w_std)
        inv["grid"] = _save(torch.cat([phone[:8] * (masks[:8] >= 0.5),
                                       render(generator, codes[:8].float())]),
                            images_dir / f"inversion_seed{seed}.png")
        log(f"seed {seed} inversion (bank): {inv['bank']['psnr']:.2f} dB, LPIPS "
            f"{inv['bank']['lpips']:.3f}, w_distance {inv['bank']['w_distance']:.2f}")
        res["inversion"] = inv

        _, studio = load_split(source, upsample_split, "studio", _size(source, upsample_split))
        up_stems, phone_hr = load_split(source, upsample_split, "phone", studio.shape[-1])
        mask_hr = torch.cat([area(source.load(s, "mask")[None].float(), studio.shape[-1])
                             for s in up_stems])
        ups = {"bicubic": upsampler_quality(None, studio, phone_hr, r, net)}
        for name in upsamplers:
            ckpt = stages / name / f"seed{seed}" / "last.ckpt"
            if ckpt.is_file():
                model = load_upsampler(str(ckpt)).eval()
                ups[name] = upsampler_quality(model, studio, phone_hr, r, net, seed, bf16,
                                              mask=mask_hr)
        shown = [studio[:4], ups["bicubic"]["outputs"]]
        shown += [v["outputs"] for k, v in ups.items() if k != "bicubic"]
        ups["grid"] = _save(torch.cat(shown), images_dir / f"upsampler_seed{seed}.png", 4)
        ups["grid_rows"] = ["studio", *[k for k in ups if k not in ("grid",)]]
        log(f"seed {seed} upsampler: " + ", ".join(
            f"{k} {v['psnr']:.2f} dB / {v['lpips']:.3f}" for k, v in ups.items()
            if isinstance(v, dict)))
        res["upsampler"] = ups
        out["seeds"][f"seed{seed}"] = _strip(res)
    return out


def _size(source, split: str) -> int:
    size = source.size(split, "studio")
    if size is not None:
        return int(size[-1])
    stem = source.splits()[split][0]
    return int(source.load(stem, "studio").shape[-1])


def markdown(result: Mapping[str, Any]) -> str:
    seeds = result["seeds"]
    lines = ["# Stage quality", "", f"Data: {result['source']}; features: "
             f"{result['feature_net']}.", "", "## Prior (KID x 10^3 against phone_train, lower "
             "is better)", "", "| seed | KID samples | KID real halves | KID blurred reals |",
             "|---|---|---|---|"]
    for s, r in seeds.items():
        p = r["prior"]
        lines.append(f"| {s} | {1e3 * p['kid']['mean']:.2f} ± {1e3 * p['kid']['std']:.2f} | "
                     f"{1e3 * p['kid_real_halves']['mean']:.2f} | "
                     f"{1e3 * p['kid_blurred_reals']['mean']:.2f} |")
    lines += ["", "## Inversion of the held-out test phone textures (visible texels)", "",
              "| seed | codes | PSNR | ST-LPIPS VGG | w_distance | row_spread | s |",
              "|---|---|---|---|---|---|---|"]
    for s, r in seeds.items():
        for name, v in r["inversion"].items():
            if isinstance(v, dict) and "w_distance" in v:
                lines.append(f"| {s} | {name} | {v.get('psnr', float('nan')):.2f} | "
                             f"{v.get('lpips', float('nan')):.3f} | {v['w_distance']:.2f} | "
                             f"{v['row_spread']:.2f} | {v.get('seconds', float('nan')):.0f} |")
    lines += ["", "## Upsampler on the area-downsampled studio textures", "",
              "| seed | upsampler | PSNR | ST-LPIPS VGG | s |", "|---|---|---|---|---|"]
    for s, r in seeds.items():
        for name, v in r["upsampler"].items():
            if isinstance(v, dict):
                lines.append(f"| {s} | {name} | {v['psnr']:.2f} | {v['lpips']:.3f} | "
                             f"{v['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lift.evaluation.stage_quality",
        description="Score a lift run's stages on their own jobs: prior KID, held-out "
                    "inversion, upsampler vs bicubic (writes RUN_DIR/tables/stage_quality.*).")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--seeds", type=int, nargs="*", default=None,
                        help="default: the run's recipe seeds")
    parser.add_argument("--samples", type=int, default=1000, help="prior samples for KID")
    parser.add_argument("--w-inversion", type=Path, default=None, metavar="CONFIG",
                        help="an inversion stage config (e.g. configs/invert/"
                             "stylegan2_quickstart.yaml): also invert the test textures in W "
                             "and in W+ with its settings (first seed)")
    parser.add_argument("--w-inversion-steps", type=int, default=None)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the upsamplers")
    parser.add_argument("--upsamplers", nargs="+", default=None, metavar="STAGE",
                        help="the upsampler stages to score against bicubic (default: "
                             "upsample_train_inference upsample_vanilla upsample_srresnet)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other seeds of an existing stage_quality.json")
    args = parser.parse_args(argv)
    from lift.config_compose import resolve_config
    from lift.evaluation import load_recipe
    from lift.evaluation.source import recipe_source

    import os

    from lift.data.sources import SYNTH_CACHE_ENV

    recipe = load_recipe(args.run_dir / "recipe.yaml", args.run_dir)
    if (args.run_dir / "synth_cache").is_dir():  # the run's generated textures, not again
        os.environ.setdefault(SYNTH_CACHE_ENV, str(args.run_dir / "synth_cache"))
    seeds = args.seeds if args.seeds is not None else list(recipe.get("seeds") or [0])
    spec = None
    if args.w_inversion is not None:
        spec = resolve_config(args.w_inversion)["model"]["init_args"]["settings"]
        if args.w_inversion_steps is not None:
            spec["init_args"]["schedule"]["init_args"]["steps"] = args.w_inversion_steps
    extra = {} if args.upsamplers is None else {"upsamplers": tuple(args.upsamplers)}
    result = evaluate_stages(args.run_dir, seeds, recipe_source(recipe),
                             samples=args.samples, w_inversion=spec, bf16=args.bf16, **extra)
    folder = args.run_dir / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    old = folder / "stage_quality.json"
    if args.merge and old.is_file():
        kept = json.loads(old.read_text()).get("seeds", {})
        result["seeds"] = {**{k: v for k, v in kept.items() if k not in result["seeds"]},
                           **result["seeds"]}
        result["seeds"] = dict(sorted(result["seeds"].items()))
    atomic_write_text(folder / "stage_quality.json", json.dumps(result, indent=1))
    atomic_write_text(folder / "stage_quality.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
