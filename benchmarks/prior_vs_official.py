"""Prior-stage training iteration: lift's PriorModule vs the official NVlabs StyleGAN2-ADA code.

Both sides run StyleGAN2's full training iteration on equal networks and batch: G main, lazy
path-length regularisation every ``pl_interval``, D main, lazy R1 every ``r1_interval``, EMA of
G, style mixing 0.9, Adam with the lazy-regularisation lr/beta correction. The network and loss
settings are read from ``configs/prior/stylegan2_quickstart.yaml`` (64², channel_base 4096,
channel_max 256, 8 mapping layers); the official networks are built with the same arguments in
its ``--fp32`` form (no fp16 layers, no conv clamp), as lift's are.

* lift: the real ``lift.stages.prior.PriorModule.training_step`` under a Lightning Trainer
  (as ``benchmarks/prior_throughput.py`` drives it), in-memory textures.
* official: ``training.networks.Generator/Discriminator`` and
  ``training.loss.StyleGAN2Loss.accumulate_gradients`` phases (Gmain, Greg, Dmain, Dreg) driven
  the way ``training/training_loop.py`` does (per-phase zero_grad / requires_grad toggling /
  gain = interval / nan_to_num of the gradients / step, then the EMA), imported from a checkout
  given by path and run on CPU through its reference (PyTorch) op implementations. Nothing of it
  is copied here.

Runs alternate (lift, official, official, lift, ...) after an untimed warm-up of both; each
side's median img/s is printed per second of this process's CPU time (robust to other processes
on the cores) and per wall second, and the ratio lift/official as the median of the per-repeat
ratios (target >= 1.0). Augmentation is off on both sides by default (equal work); ``--augment``
turns on lift's DiffAugment (the quickstart config's) and official ADA's 'bgc' pipe at a fixed p
(different work, for information only).

    git --git-dir=/work/.mirror/NVlabs+stylegan2-ada-pytorch/repo archive HEAD | tar -x -C /tmp/sg2ada
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296 \
        python benchmarks/prior_vs_official.py --official /tmp/sg2ada --iterations 32 --repeats 3

Timed iterations should be a multiple of ``r1_interval`` (16) so that each run holds the average
share of regularisation phases. Both sides run in one process, hence under the same allocator
setting (see FACTS.md on GLIBC_TUNABLES). On cores shared with other load, ``--threads 1`` can be
several times faster than 2 for both sides (2 threads on 2 busy cores spin and wait); compare at
the same setting, and read the CPU-time ratio first (wall time follows the other processes).

Differences between the two iterations (same phases, order, intervals and loss terms):
official runs the second mapping pass of style mixing on every batch (and discards it for the
10 % without mixing), lift only when it mixes; official's D main does two backward passes
(fakes, then reals), lift one through both; official also sanitises every gradient with
``nan_to_num`` before each step and accumulates ``training_stats``; lift's step runs inside
Lightning (hooks, ``self.log`` every ``log_every_n_steps`` of the quickstart trainer, 5) and
calls the plugin loss-term hooks.
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import time
import warnings
from pathlib import Path

import lightning.pytorch as pl
import torch
import yaml
from torch.utils.data import DataLoader

from machine import describe
from prior_throughput import Textures

from lift.stages.prior import PriorModule
from lift_stylegan2.augment import DiffAugment
from lift_stylegan2.networks import Discriminator, Generator

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/prior/stylegan2_quickstart.yaml"
FACTS_PARAMS = {"G": 7_056_600, "D": 4_727_617}  # ../shared/FACTS.md, official at these settings


def clocks() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def quickstart() -> dict:
    """The prior's init_args from the quickstart config (networks and loss settings)."""
    return yaml.safe_load(CONFIG.read_text())["model"]["init_args"]


def make_loader(args, n_iter: int) -> DataLoader:
    n = args.batch * n_iter
    return DataLoader(Textures(n, args.resolution), batch_size=args.batch, shuffle=True,
                      drop_last=True, generator=torch.Generator().manual_seed(0))


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# --- lift ------------------------------------------------------------------------------------

def build_lift(cfg: dict) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    return (Generator(**cfg["generator"]["init_args"]),
            Discriminator(**cfg["discriminator"]["init_args"]))


class Timer(pl.Callback):
    def __init__(self, warmup: int):
        self.warmup = warmup
        self.start = self.end = (0.0, 0.0)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.start = clocks()

    def on_train_epoch_end(self, trainer, pl_module):
        self.end = clocks()


def lift_run(args, cfg: dict, iterations: int, warmup: int) -> dict:
    g, d = build_lift(cfg)
    aug = cfg["augment"]["init_args"] if args.augment else None
    module = PriorModule(
        g, d, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"],
        r1_gamma=cfg["r1_gamma"], r1_interval=cfg["r1_interval"],
        pl_weight=cfg["pl_weight"], pl_interval=cfg["pl_interval"], pl_decay=cfg["pl_decay"],
        pl_batch_shrink=cfg["pl_batch_shrink"], style_mixing_prob=cfg["style_mixing_prob"],
        ema_kimg=cfg["ema_kimg"], ema_rampup=cfg["ema_rampup"],
        augment=DiffAugment(**aug) if aug is not None else None,
        loss_weights=cfg["loss_weights"], grid_size=4)
    timer = Timer(warmup)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0, log_every_n_steps=args.log_every, callbacks=[timer])
    trainer.fit(module, make_loader(args, warmup + iterations))
    cpu, wall = (e - s for e, s in zip(timer.end, timer.start))
    n = args.batch * iterations
    return {"cpu": n / cpu, "wall": n / wall, "steps": trainer.global_step,
            "G": n_params(g), "D": n_params(d)}


# --- official --------------------------------------------------------------------------------

def import_official(path: str):
    root = Path(path).resolve()
    if not (root / "training" / "loss.py").is_file():
        sys.exit(f"--official {path}: no training/loss.py there; pass a stylegan2-ada-pytorch "
                 "checkout (e.g. git --git-dir=<fetched repo> archive HEAD | tar -x -C DIR)")
    sys.path.insert(0, str(root))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torch_utils import misc
        from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix
        from training import augment, loss, networks
    # The custom CUDA ops: bias_act / upfirdn2d pick their reference implementation for CPU
    # tensors by themselves; the gradfix convolution / grid_sample are switched off explicitly
    # (training_loop.py turns them on for CUDA).
    conv2d_gradfix.enabled = False
    grid_sample_gradfix.enabled = False
    return argparse.Namespace(misc=misc, loss=loss, networks=networks, augment=augment)


def build_official(off, cfg: dict):
    gk, dk = cfg["generator"]["init_args"], cfg["discriminator"]["init_args"]
    torch.manual_seed(0)
    G = off.networks.Generator(
        z_dim=gk["z_dim"], c_dim=0, w_dim=gk["w_dim"], img_resolution=gk["resolution"],
        img_channels=gk["img_channels"],
        mapping_kwargs=dict(num_layers=gk["mapping_layers"],
                            lr_multiplier=gk["mapping_lr_multiplier"],
                            w_avg_beta=gk["w_avg_beta"]),
        synthesis_kwargs=dict(channel_base=gk["channel_base"], channel_max=gk["channel_max"],
                              num_fp16_res=0, conv_clamp=None))
    D = off.networks.Discriminator(
        c_dim=0, img_resolution=dk["resolution"], img_channels=dk["img_channels"],
        channel_base=dk["channel_base"], channel_max=dk["channel_max"], num_fp16_res=0,
        conv_clamp=None, epilogue_kwargs=dict(mbstd_group_size=dk["mbstd_group_size"],
                                              mbstd_num_channels=dk["mbstd_num_channels"]))
    return G, D


def official_run(args, off, cfg: dict, iterations: int, warmup: int) -> dict:
    """training_loop.py's iteration, minus its ticks, snapshots and metrics."""
    G, D = build_official(off, cfg)
    G = G.train().requires_grad_(False)
    D = D.train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()
    augment_pipe = None
    if args.augment:
        bgc = dict(xflip=1, rotate90=1, xint=1, scale=1, rotate=1, aniso=1, xfrac=1,
                   brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
        augment_pipe = off.augment.AugmentPipe(**bgc).train().requires_grad_(False)
        augment_pipe.p.copy_(torch.as_tensor(args.ada_p))
    loss = off.loss.StyleGAN2Loss(
        device=torch.device("cpu"), G_mapping=G.mapping, G_synthesis=G.synthesis, D=D,
        augment_pipe=augment_pipe, style_mixing_prob=cfg["style_mixing_prob"],
        r1_gamma=cfg["r1_gamma"], pl_batch_shrink=cfg["pl_batch_shrink"],
        pl_decay=cfg["pl_decay"], pl_weight=cfg["pl_weight"])
    phases = []
    for name, module, interval in (("G", G, cfg["pl_interval"]), ("D", D, cfg["r1_interval"])):
        c = interval / (interval + 1)
        opt = torch.optim.Adam(module.parameters(), lr=cfg["lr"] * c,
                               betas=[b ** c for b in cfg["betas"]], eps=cfg["eps"])
        phases += [argparse.Namespace(name=name + "main", module=module, opt=opt, interval=1),
                   argparse.Namespace(name=name + "reg", module=module, opt=opt,
                                      interval=interval)]
    ema_kimg, ema_rampup = cfg["ema_kimg"], cfg["ema_rampup"]
    batch_size, steps, cur_nimg = args.batch, 0, 0
    start = None
    for batch_idx, batch in enumerate(make_loader(args, warmup + iterations)):
        if batch_idx == warmup:
            start = clocks()
        # Data fetch (its datasets give uint8 in [0, 255], ours float in [0, 1]).
        real_img = batch["phone"].to(torch.float32) * 2 - 1
        real_c = torch.zeros([batch_size, 0])
        all_gen_z = torch.randn([len(phases) * batch_size, G.z_dim]).split(batch_size)
        all_gen_c = torch.zeros([len(phases) * batch_size, 0]).split(batch_size)
        for phase, gen_z, gen_c in zip(phases, all_gen_z, all_gen_c):
            if batch_idx % phase.interval != 0:
                continue
            phase.opt.zero_grad(set_to_none=True)
            phase.module.requires_grad_(True)
            loss.accumulate_gradients(phase=phase.name, real_img=real_img, real_c=real_c,
                                      gen_z=gen_z, gen_c=gen_c, sync=True, gain=phase.interval)
            phase.module.requires_grad_(False)
            for param in phase.module.parameters():
                if param.grad is not None:
                    off.misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5,
                                        out=param.grad)
            phase.opt.step()
            steps += 1
        ema_nimg = ema_kimg * 1000
        if ema_rampup is not None:
            ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
        ema_beta = 0.5 ** (batch_size / max(ema_nimg, 1e-8))
        with torch.no_grad():  # training_loop.py: all of G has requires_grad False by now
            for p_ema, p in zip(G_ema.parameters(), G.parameters()):
                p_ema.copy_(p.lerp(p_ema, ema_beta))
            for b_ema, b in zip(G_ema.buffers(), G.buffers()):
                b_ema.copy_(b)
        cur_nimg += batch_size
    cpu, wall = (e - s for e, s in zip(clocks(), start))
    n = args.batch * iterations
    return {"cpu": n / cpu, "wall": n / wall, "steps": steps, "G": n_params(G), "D": n_params(D)}


# --- main ------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", required=True,
                        help="path of a stylegan2-ada-pytorch checkout (not a bare git dir)")
    parser.add_argument("--iterations", type=int, default=32, help="timed iterations per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=False,
                        help="--augment: lift DiffAugment vs official ADA 'bgc' at --ada-p "
                             "(unequal work); default --no-augment on both sides")
    parser.add_argument("--ada-p", type=float, default=0.2)
    parser.add_argument("--log-every", type=int, default=None,
                        help="Lightning log_every_n_steps (default: the quickstart trainer's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    cfg = quickstart()
    args.resolution = cfg["generator"]["init_args"]["resolution"]
    if args.log_every is None:
        run_cfg = yaml.safe_load(CONFIG.read_text())
        args.log_every = run_cfg.get("trainer", {}).get("log_every_n_steps", 50)
    if args.iterations % cfg["r1_interval"]:
        print(f"note: --iterations {args.iterations} is not a multiple of r1_interval "
              f"{cfg['r1_interval']}; runs hold an uneven share of regularisation phases")
    off = import_official(args.official)

    print(describe("cpu"))
    gk = cfg["generator"]["init_args"]
    print(f"{args.resolution}², batch {args.batch}, channel_base {gk['channel_base']}, "
          f"channel_max {gk['channel_max']}, mapping layers {gk['mapping_layers']}, "
          f"pl every {cfg['pl_interval']}, R1 every {cfg['r1_interval']}, style mixing "
          f"{cfg['style_mixing_prob']}, augmentation {'on (unequal)' if args.augment else 'off'}; "
          f"{args.iterations} timed iterations (after {args.warmup} untimed) per run, "
          f"{args.repeats} repeats, "
          f"{args.threads} threads", flush=True)

    # Untimed warm-up of both sides (allocator, oneDNN primitives, first-call costs).
    lift_run(args, cfg, 2, 1)
    official_run(args, off, cfg, 2, 1)
    lift, official = [], []
    for r in range(args.repeats):
        order = ("lift", "official") if r % 2 == 0 else ("official", "lift")
        for side in order:
            if side == "lift":
                lift.append(lift_run(args, cfg, args.iterations, args.warmup))
            else:
                official.append(official_run(args, off, cfg, args.iterations, args.warmup))
        lo, of = lift[-1], official[-1]
        print(f"run {r}: lift {lo['cpu']:.2f} img/s CPU, {lo['wall']:.2f} wall | official "
              f"{of['cpu']:.2f} CPU, {of['wall']:.2f} wall | lift/official "
              f"{lo['cpu'] / of['cpu']:.3f} CPU, {lo['wall'] / of['wall']:.3f} wall", flush=True)

    lo, of = lift[0], official[0]
    print("\nparameters: lift G {:,} D {:,} | official G {:,} D {:,} | FACTS official "
          "G {:,} D {:,}".format(lo["G"], lo["D"], of["G"], of["D"],
                                 FACTS_PARAMS["G"], FACTS_PARAMS["D"]))
    total = args.warmup + args.iterations
    print(f"optimiser steps per run ({total} iterations): lift {lo['steps']}, "
          f"official {of['steps']}")
    for kind, label in (("cpu", "process CPU time"), ("wall", "wall time")):
        a = statistics.median(x[kind] for x in lift)
        b = statistics.median(x[kind] for x in official)
        ratio = statistics.median(x[kind] / y[kind] for x, y in zip(lift, official))
        print(f"{label:>16}: lift {a:7.2f} img/s, official {b:7.2f} img/s (medians); "
              f"lift/official {ratio:.3f}x (median of per-repeat ratios; target >= 1.0)")


if __name__ == "__main__":
    main()
