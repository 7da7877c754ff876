"""ResShift (15 steps) vs a standard DDPM-trained / DDIM-sampled upsampler of the same network.

Both models get the same denoiser (the stage config's ``UNetDenoiser``), the same input
y = up(I_LR) + G(I_phone) concatenated to x_t (train+inference conditioning), the same data
(synthetic quickstart ``paired_train``, random crops), optimiser, EMA and number of training steps,
in one plain training loop. The baseline is diffusers' ``DDPMScheduler`` (1000 steps, linear betas,
x_0 prediction) for training and ``DDIMScheduler`` (eta = 0) for sampling: a standard Gaussian
diffusion that starts from pure noise instead of from y.

Then both sample the ``paired_test`` textures at full resolution; the script prints PSNR/SSIM of
ResShift at its 15 steps and of DDIM at several step counts, and the ratio of the fewest DDIM steps
whose PSNR reaches ResShift's to ResShift's 15 (time per step is the same network call).

    python benchmarks/upsample_ddim_baseline.py [--train-steps 150] [--ddim-steps 15 50 100]

Short CPU runs leave both models under-trained: read the ordering, not the absolute figures.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "upsample" / "resshift_train_inference.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--train-steps", type=int, default=150)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--ema", type=float, default=0.99)
    ap.add_argument("--ddim-steps", type=int, nargs="+", default=[15, 50, 100])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from diffusers import DDIMScheduler, DDPMScheduler

    from lift.data import SyntheticSource, TextureDataModule
    from lift.ema import ema_update
    from lift_metrics.image_metrics import PSNR, SSIM
    from upsample_speed import build_upsampler

    torch.manual_seed(0)
    resshift = build_upsampler(args.config)
    assert resshift.conditioning == "train+inference"
    baseline_net = copy.deepcopy(resshift.denoiser)  # the same network, its own weights
    for m in baseline_net.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    ddpm = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear",
                         prediction_type="sample", clip_sample=True)
    ddim = DDIMScheduler.from_config(ddpm.config)

    dm = TextureDataModule(SyntheticSource("quickstart", 0), train_split="paired_train",
                           resolution=256, crop_size=args.crop, batch_size=args.batch)
    dm.setup("fit")
    dm.setup("test")
    s = resshift.scale_factor

    opt_r = torch.optim.AdamW(resshift.parameters(), lr=args.lr, weight_decay=0.0)
    opt_b = torch.optim.AdamW(baseline_net.parameters(), lr=args.lr, weight_decay=0.0)
    ema_r, ema_b = copy.deepcopy(resshift), copy.deepcopy(baseline_net)
    g = torch.Generator().manual_seed(0)
    step, t0 = 0, time.perf_counter()
    while step < args.train_steps:
        for batch in dm.train_dataloader():
            studio, phone = batch["studio"], batch["phone"]
            low = F.interpolate(studio, scale_factor=1 / s, mode="area")
            loss_r = resshift.training_losses(low, studio, phone, generator=g)["mse"]
            opt_r.zero_grad()
            loss_r.backward()
            opt_r.step()
            ema_update(ema_r, resshift, args.ema)
            # DDPM baseline: x_t from pure Gaussian noise around x_0, x_0 prediction, plain MSE
            y = 2 * resshift.degraded_input(low, phone, "train") - 1
            x0 = 2 * studio - 1
            t = torch.randint(0, ddpm.config.num_train_timesteps, (x0.shape[0],), generator=g)
            noise = torch.randn(x0.shape, generator=g)
            loss_b = F.mse_loss(baseline_net(ddpm.add_noise(x0, noise, t), t, y), x0)
            opt_b.zero_grad()
            loss_b.backward()
            opt_b.step()
            ema_update(ema_b, baseline_net, args.ema)
            step += 1
            if step % 25 == 0:
                print(f"step {step}: resshift mse {loss_r.item():.4f}, ddpm mse {loss_b.item():.4f}"
                      f" ({time.perf_counter() - t0:.0f} s)", flush=True)
            if step >= args.train_steps:
                break

    @torch.no_grad()
    def ddim_sample(low, phone, n, seed):
        y = 2 * ema_r.degraded_input(low, phone, "sample") - 1
        gen = torch.Generator().manual_seed(seed)
        ddim.set_timesteps(n)
        x = torch.randn(y.shape, generator=gen)
        for t in ddim.timesteps:
            tt = torch.full((x.shape[0],), int(t), dtype=torch.long)
            x0 = ema_b(x, tt, y).clamp(-1, 1)
            x = ddim.step(x0, t, x, eta=0.0, generator=gen).prev_sample
        return ((x + 1) / 2).clamp(0, 1)

    def evaluate(sample_fn) -> dict:
        psnr, ssim = PSNR(), SSIM()
        t = time.perf_counter()
        for i, batch in enumerate(dm.test_dataloader()):
            studio, phone = batch["studio"], batch["phone"]
            low = F.interpolate(studio, scale_factor=1 / s, mode="area")
            out = sample_fn(low, phone, i)
            psnr.update(out, studio)
            ssim.update(out, studio)
        return dict(psnr=round(psnr.compute().item(), 3), ssim=round(ssim.compute().item(), 4),
                    wall_s=round(time.perf_counter() - t, 1))

    results = {"resshift_15": evaluate(lambda lo, ph, i: ema_r.upsample(
        lo, ph, generator=torch.Generator().manual_seed(i)))}
    print("ResShift, 15 steps:", results["resshift_15"], flush=True)
    for n in args.ddim_steps:
        results[f"ddim_{n}"] = evaluate(lambda lo, ph, i, n=n: ddim_sample(lo, ph, n, i))
        print(f"DDIM, {n} steps:", results[f"ddim_{n}"], flush=True)
    target = results["resshift_15"]["psnr"]
    reached = [n for n in args.ddim_steps if results[f"ddim_{n}"]["psnr"] >= target]
    if reached:
        print(f"DDIM needs {min(reached)} steps to reach ResShift's {target} dB PSNR at 15 steps: "
              f"step ratio x{min(reached) / 15:.1f}")
    else:
        print(f"DDIM did not reach ResShift's {target} dB PSNR within {max(args.ddim_steps)} "
              f"steps (ratio > x{max(args.ddim_steps) / 15:.1f})")
    print(json.dumps(results))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
