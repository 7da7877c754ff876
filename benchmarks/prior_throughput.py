"""Prior-stage training throughput: PriorModule under Lightning vs a plain PyTorch loop.

Both train the same networks (same initial weights), on the same in-memory textures and batch,
with the same phase schedule (G, lazy path length, D, lazy R1, EMA), style mixing and
augmentation; only the surrounding framework differs. Runs alternate (plain, Lightning, ...)
to spread machine noise evenly; medians are reported, with the framework's overhead
``1 - lightning_img_s / plain_img_s`` from the median of the per-repeat ratios (target: < 5 %),
and the share of each Lightning run's time spent outside ``training_step`` (Lightning's loop,
hooks and data fetching; measured within one run, so robust to other load on the machine).

    python benchmarks/prior_throughput.py                       # 32² narrow nets, CPU
    python benchmarks/prior_throughput.py --resolution 64 --channel-base 4096 --channel-max 256
    python benchmarks/prior_throughput.py --device cuda --resolution 256 --channel-base 32768 \
        --channel-max 512 --batch 32 --iterations 64

On CPU, images/s are per second of this process's CPU time (all threads), so that other
processes sharing the cores do not distort the comparison; on a GPU they are per wall second.
glibc's allocator is a large source of noise (see FACTS.md): run with
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296``
for steadier numbers, and compare both sides under the same setting.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lift.ema import beta_from_half_life, ema_update
from lift.stages.prior import PriorModule
from lift.losses import gan as losses
from lift_stylegan2.augment import DiffAugment
from lift_stylegan2.networks import Discriminator, Generator


class Textures(Dataset):
    def __init__(self, n: int, resolution: int):
        self.phone = torch.rand(n, 3, resolution, resolution, generator=torch.Generator()
                                .manual_seed(0))

    def __len__(self) -> int:
        return len(self.phone)

    def __getitem__(self, i: int) -> dict:
        return {"stem": f"t{i}", "phone": self.phone[i]}


def build(args) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    g = Generator(z_dim=args.z_dim, w_dim=args.z_dim, resolution=args.resolution,
                  channel_base=args.channel_base, channel_max=args.channel_max)
    d = Discriminator(resolution=args.resolution, channel_base=args.channel_base,
                      channel_max=args.channel_max)
    return g, d


def make_loader(args) -> DataLoader:
    n = args.batch * (args.warmup + args.iterations)
    return DataLoader(Textures(n, args.resolution), batch_size=args.batch, shuffle=True,
                      drop_last=True, generator=torch.Generator().manual_seed(0))


def plain_loop(args) -> float:
    """The reference loop written directly against torch: returns images/s after warm-up."""
    device = torch.device(args.device)
    g, d = build(args)
    g, d = g.to(device), d.to(device)
    g_ema = copy.deepcopy(g).requires_grad_(False).eval()
    augment = DiffAugment().to(device) if args.augment else None

    def adam(params, k):
        c = k / (k + 1)
        return torch.optim.Adam(params, lr=0.002 * c, betas=(0.0, 0.99 ** c), eps=1e-8)

    opt_g, opt_d = adam(g.parameters(), args.pl_interval), adam(d.parameters(), args.r1_interval)
    pl_mean = torch.zeros([], device=device)
    seen = 0

    def generate(n):
        ws = g.mapping(torch.randn(n, g.z_dim, device=device), update_w_avg=True)
        if torch.rand(()) < 0.9:
            cutoff = int(torch.randint(1, g.num_ws, ()))
            ws2 = g.mapping(torch.randn(n, g.z_dim, device=device))
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return g.synthesis(ws, noise_mode="random"), ws

    def disc(x):
        return d(augment(x) if augment is not None else x)

    def step(loss, opt):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    start = None
    for it, batch in enumerate(make_loader(args)):
        if it == args.warmup:
            sync(device)
            start = clock(device)
        reals = batch["phone"].to(device) * 2 - 1
        n = reals.shape[0]
        g.requires_grad_(True)
        d.requires_grad_(False)
        fakes, _ = generate(n)
        step(losses.g_nonsaturating_loss(disc(fakes)), opt_g)
        if it % args.pl_interval == 0:
            fakes, ws = generate(n // 2)
            penalty, new_mean, _ = losses.path_length_penalty(fakes, ws, pl_mean, 0.01)
            pl_mean.copy_(new_mean)
            step(penalty * 2.0 * args.pl_interval, opt_g)
        g.requires_grad_(False)
        d.requires_grad_(True)
        with torch.no_grad():
            fakes, _ = generate(n)
        step(losses.d_logistic_loss(disc(reals), disc(fakes)), opt_d)
        if it % args.r1_interval == 0:
            x = reals.detach().requires_grad_(True)
            step(losses.d_r1_penalty(disc(x), x, 10.0) * args.r1_interval, opt_d)
        g.requires_grad_(True)
        seen += n
        ema_update(g_ema, g, beta_from_half_life(10_000, n))
    sync(device)
    return args.batch * args.iterations / (clock(device) - start)


class Timer(pl.Callback):
    def __init__(self, warmup: int, device: torch.device):
        self.warmup, self.device = warmup, device
        self.start = self.end = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            sync(self.device)
            self.start = clock(self.device)

    def on_train_epoch_end(self, trainer, pl_module):
        sync(self.device)
        self.end = clock(self.device)


class TimedPriorModule(PriorModule):
    """PriorModule that also adds up the time spent inside ``training_step`` after warm-up."""

    warmup = 0
    step_time = 0.0

    def training_step(self, batch, batch_idx):
        start = clock(self.device)
        super().training_step(batch, batch_idx)
        sync(self.device)
        if batch_idx >= self.warmup:
            self.step_time += clock(self.device) - start


def lightning_run(args) -> tuple[float, float]:
    """Images/s, and the share of the timed span spent outside ``training_step``."""
    g, d = build(args)
    module = TimedPriorModule(
        g, d, lr=0.002, betas=(0.0, 0.99), r1_gamma=10.0, r1_interval=args.r1_interval,
        pl_weight=2.0, pl_interval=args.pl_interval, pl_decay=0.01, pl_batch_shrink=2,
        style_mixing_prob=0.9, ema_kimg=10.0, augment=DiffAugment() if args.augment else None,
        loss_weights={"adv": 1.0, "r1": 1.0, "path_length": 1.0}, grid_size=4)
    module.warmup = args.warmup
    timer = Timer(args.warmup, torch.device(args.device))
    trainer = pl.Trainer(
        accelerator="gpu" if args.device.startswith("cuda") else "cpu", devices=1,
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[timer])
    trainer.fit(module, make_loader(args))
    span = timer.end - timer.start
    return args.batch * args.iterations / span, 1 - module.step_time / span


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    """Wall time on a GPU; on a CPU this process's CPU time (all threads), which other
    processes competing for the cores do not inflate the way they inflate wall time."""
    return time.perf_counter() if device.type == "cuda" else time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--channel-base", type=int, default=1024)
    parser.add_argument("--channel-max", type=int, default=128)
    parser.add_argument("--z-dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=32, help="timed iterations per run")
    parser.add_argument("--warmup", type=int, default=4, help="untimed iterations first")
    parser.add_argument("--pl-interval", type=int, default=4)
    parser.add_argument("--r1-interval", type=int, default=16)
    parser.add_argument("--augment", action="store_true", help="DiffAugment on both sides")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    # An untimed run first: the allocator and the kernels' first-call costs would otherwise
    # be paid by whichever side runs first. Then alternate the order.
    plain_loop(argparse.Namespace(**{**vars(args), "iterations": 2, "warmup": 2}))
    plain, light, outside = [], [], []
    for r in range(args.repeats):
        if r % 2 == 0:
            plain.append(plain_loop(args))
            light_img_s, out = lightning_run(args)
        else:
            light_img_s, out = lightning_run(args)
            plain.append(plain_loop(args))
        light.append(light_img_s)
        outside.append(out)
        print(f"run {r}: plain {plain[-1]:.2f} img/s, lightning {light[-1]:.2f} img/s "
              f"({100 * out:.1f} % of it outside training_step)", flush=True)
    p, lt = statistics.median(plain), statistics.median(light)
    kind = "wall" if args.device.startswith("cuda") else "process CPU"
    print(f"\n{args.resolution}² batch {args.batch}, {args.iterations} timed iterations x "
          f"{args.repeats} runs, device {args.device}, {args.threads} threads, {kind} time")
    print(f"plain PyTorch loop : {p:8.2f} img/s (median)")
    print(f"PriorModule (Lightning): {lt:8.2f} img/s (median)")
    # Paired ratios (each repeat's two runs saw similar machine conditions) are the robust figure.
    ratio = statistics.median(b / a for a, b in zip(plain, light))
    print(f"ratio lightning/plain  : {ratio:.3f} (median of paired runs; "
          f"framework overhead {100 * (1 - ratio):+.1f} %, target < 5 %)")
    # Measured within each Lightning run, hence insensitive to other load on the machine:
    # the loop, hooks, callbacks and data fetching outside the module's own step.
    print(f"time outside training_step: {100 * statistics.median(outside):.2f} % (median)")


if __name__ == "__main__":
    main()
