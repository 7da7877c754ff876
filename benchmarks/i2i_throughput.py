"""CUT / FastCUT / CycleGAN training throughput: our translators vs the reference code.

The reference is taesungp/contrastive-unpaired-translation (which also holds CycleGAN), run
from a local checkout that is never part of this repository:

    git clone https://github.com/taesungp/contrastive-unpaired-translation /tmp/cut_ref
    python benchmarks/i2i_throughput.py --reference /tmp/cut_ref --resolution 128
    python benchmarks/i2i_throughput.py --reference /tmp/cut_ref --resolution 256 --models cut
    python benchmarks/i2i_throughput.py --reference /tmp/cut_ref --lightning   # + Trainer.fit

Both sides train the same configuration (CUT: the repo's ``--CUT_mode CUT`` defaults;
FastCUT: ``--CUT_mode FastCUT``; CycleGAN: ``--model cycle_gan --no_antialias
--no_antialias_up --init_type normal``, i.e. the original CycleGAN code's architecture and
init) with Adam(2e-4, (0.5, 0.999)), on the same synthetic phone/studio textures (area-resized
to ``--resolution``), batch 1, in one process (same torch threads, same allocator settings).
Parameter counts of both are printed and must be equal. Ours runs as the stage does: one
``forward_step``, then each phase in ``phase_order`` with only that phase's parameters
requiring grad, in a plain torch loop, once with the reference's Adam and once with fused
Adam (the same update in one kernel, as the quickstart configs select); with ``--lightning``
also through ``lift.stages.translation.TranslationModule`` under a Lightning ``Trainer``
(fused Adam). Measured figures: docs/translators_i2i.md.

Runs alternate (reference, ours, ...) to spread machine noise; medians of iterations per
second are reported, per second of wall time and per second of this process's CPU time (the
latter is robust to other processes on the machine), with ratios ours / reference (target:
>= 1.0). glibc's allocator is a large noise source (FACTS.md): compare under the same setting,
e.g. ``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

# --- the reference code ----------------------------------------------------------------------

REFERENCE_FLAGS = {
    "cut": "--model cut --CUT_mode CUT",
    "fastcut": "--model cut --CUT_mode FastCUT",
    "cyclegan": "--model cycle_gan --no_antialias --no_antialias_up --init_type normal",
}


def import_reference(path: str):
    """``(TrainOptions, create_model)`` from a checkout of the CUT repository."""
    if not os.path.isfile(os.path.join(path, "models", "cut_model.py")):
        raise FileNotFoundError(
            f"no CUT reference checkout at {path!r}: git clone "
            "https://github.com/taesungp/contrastive-unpaired-translation there"
        )
    if path not in sys.path:
        sys.path.insert(0, path)
    with contextlib.redirect_stdout(open(os.devnull, "w")):  # it prints a missing-apex notice
        from models import create_model
        from options.train_options import TrainOptions
    return TrainOptions, create_model


def reference_model(path: str, kind: str, ngf: int = 64, ndf: int = 64, n_blocks: int = 9,
                    batch_size: int = 1):
    """The reference model for ``kind`` at the given widths, on CPU, options at defaults."""
    TrainOptions, create_model = import_reference(path)
    flags = (f"--dataroot unused --gpu_ids -1 --ngf {ngf} --ndf {ndf} "
             f"--netG resnet_{n_blocks}blocks --batch_size {batch_size} " + REFERENCE_FLAGS[kind])
    # Its model options re-parse sys.argv (not cmd_line) to pick mode defaults: give it ours.
    argv, sys.argv = sys.argv, [sys.argv[0], *flags.split()]
    try:
        opt = TrainOptions(cmd_line=flags).gather_options()
    finally:
        sys.argv = argv
    opt.isTrain, opt.gpu_ids, opt.amp = True, [], False
    opt.checkpoints_dir = tempfile.mkdtemp(prefix="cut_ref_")
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        model = create_model(opt)
    return model, opt


def reference_setup(model, opt, batch: dict[str, Any]) -> None:
    """What the reference's train.py does before the first iteration (CUT builds netF here).

    The repository's CycleGAN takes no data in ``data_dependent_initialize`` (its train.py
    would fail there), so it is called without.
    """
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        if opt.model == "cut":
            model.data_dependent_initialize(batch)
        model.setup(opt)


def reference_batch(phone: torch.Tensor, studio: torch.Tensor) -> dict[str, Any]:
    """Our [0, 1] batch in the reference's format ([-1, 1], keys A / B)."""
    return {"A": phone * 2 - 1, "B": studio * 2 - 1, "A_paths": ["a"], "B_paths": ["b"]}


def reference_networks(model, kind: str) -> dict[str, torch.nn.Module]:
    if kind == "cyclegan":
        return {"G": torch.nn.ModuleList([model.netG_A, model.netG_B]),
                "D": torch.nn.ModuleList([model.netD_A, model.netD_B])}
    return {"G": model.netG, "F": model.netF, "D": model.netD}


# --- ours --------------------------------------------------------------------------------------


def our_translator(kind: str, ngf: int = 64, ndf: int = 64, n_blocks: int = 9):
    from lift_i2i.cut import CUT
    from lift_i2i.cyclegan import CycleGAN

    if kind == "cut":
        return CUT(ngf=ngf, ndf=ndf, n_blocks=n_blocks)
    if kind == "fastcut":
        return CUT(ngf=ngf, ndf=ndf, n_blocks=n_blocks, nce_identity=False,
                   flip_equivariance=True)
    if kind == "cyclegan":
        return CycleGAN(ngf=ngf, ndf=ndf, n_blocks=n_blocks)
    raise ValueError(kind)


def our_networks(translator, kind: str) -> dict[str, torch.nn.Module]:
    if kind == "cyclegan":
        return {"G": torch.nn.ModuleList([translator.generator_a, translator.generator_b]),
                "D": torch.nn.ModuleList([translator.discriminator_a,
                                          translator.discriminator_b])}
    return {"G": translator.generator, "F": translator.patch_sampler,
            "D": translator.discriminator}


def adam(params, fused: bool = False) -> torch.optim.Optimizer:
    """Both references' Adam(2e-4, (0.5, 0.999)); ``fused``: the same update in one kernel
    (what our quickstart configs select; the reference's default is a per-tensor loop)."""
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999), fused=fused or None)


class PlainLoop:
    """One training iteration of ours, exactly as the stage runs it, with plain optimisers."""

    def __init__(self, translator, weights: dict[str, float] | None = None,
                 fused: bool = False):
        self.t = translator.train()
        self.weights = weights or translator.reference_loss_weights()
        self.params = {"generator": list(translator.generator_parameters()),
                       "discriminator": list(translator.discriminator_parameters())}
        self.opts = {k: adam(v, fused) for k, v in self.params.items()}

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        outputs = self.t.forward_step(batch)
        totals = {}
        for phase in self.t.phase_order:
            for name, params in self.params.items():  # Lightning's toggle_optimizer
                for p in params:
                    p.requires_grad_(name == phase)
            terms = getattr(self.t, f"{phase}_losses")(batch, outputs)
            loss = sum(self.weights[k] * v for k, v in terms.items() if self.weights.get(k))
            self.opts[phase].zero_grad(set_to_none=True)
            loss.backward()
            self.opts[phase].step()
            totals[phase] = float(loss.detach())
        for params in self.params.values():
            for p in params:
                p.requires_grad_(True)
        return totals


# --- data ----------------------------------------------------------------------------------------


def load_textures(n: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` phone and ``n`` studio textures of the synthetic quickstart benchmark, resized."""
    from lift.data import SyntheticSource

    source = SyntheticSource(profile="quickstart", seed=0)
    splits = source.splits()

    def stack(split: str, kind: str) -> torch.Tensor:
        images = torch.stack([source.load(s, kind) for s in splits[split][:n]])
        return F.interpolate(images, size=(resolution, resolution), mode="area").clamp(0, 1)

    return stack("phone_train", "phone"), stack("studio_train", "studio")


def batches(phone: torch.Tensor, studio: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
    i = 0
    while True:
        yield phone[i % len(phone)][None], studio[i % len(studio)][None]
        i += 1


# --- timing --------------------------------------------------------------------------------------


def timed(step: Callable[[], Any], warmup: int, iterations: int) -> tuple[float, float]:
    """(iterations / wall second, iterations / CPU second of this process) after warm-up."""
    for _ in range(warmup):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(iterations):
        step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return iterations / wall, iterations / cpu


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def run_ours(kind: str, args, phone, studio, fused: bool = False
             ) -> tuple[float, float, dict[str, int]]:
    torch.manual_seed(0)
    translator = our_translator(kind)
    loop = PlainLoop(translator, fused=fused)
    data = batches(phone, studio)

    def step():
        a, b = next(data)
        loop.step({"phone": a, "studio": b})

    its = timed(step, args.warmup, args.iterations)
    return (*its, {k: count(v) for k, v in our_networks(translator, kind).items()})


def run_reference(kind: str, args, phone, studio) -> tuple[float, float, dict[str, int]]:
    torch.manual_seed(0)
    model, opt = reference_model(args.reference, kind)
    data = batches(phone, studio)
    a, b = next(data)
    reference_setup(model, opt, reference_batch(a, b))

    def step():
        a, b = next(data)
        model.set_input(reference_batch(a, b))
        model.optimize_parameters()

    its = timed(step, args.warmup, args.iterations)
    return (*its, {k: count(v) for k, v in reference_networks(model, kind).items()})


def run_lightning(kind: str, args, phone, studio) -> tuple[float, float]:
    """Ours through TranslationModule + Trainer.fit: its/s over the steps after warm-up."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, Dataset

    from lift.stages.translation import TranslationModule

    class Pairs(Dataset):
        def __len__(self):
            return args.warmup + args.iterations

        def __getitem__(self, i):
            return {"phone": phone[i % len(phone)], "studio": studio[i % len(studio)],
                    "mask": torch.ones_like(phone[0, :1]), "phone_stem": f"p{i}",
                    "studio_stem": f"s{i}"}

    class Clock(pl.Callback):
        """Times the training batches after the warm-up ones (one batch = one iteration)."""

        def __init__(self):
            self.count = 0

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if batch_idx == args.warmup:
                self.wall, self.cpu = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if batch_idx >= args.warmup:
                self.count += 1
                self.wall_end, self.cpu_end = time.perf_counter(), time.process_time()

    torch.manual_seed(0)
    translator = our_translator(kind)
    fused_adam = functools.partial(adam, fused=True)  # as in the quickstart configs
    module = TranslationModule(translator=translator, generator_optimizer=fused_adam,
                               discriminator_optimizer=fused_adam,
                               loss_weights=translator.reference_loss_weights())
    clock = Clock()
    # One epoch over warm-up + timed batches (max_steps would count both optimisers' steps).
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, callbacks=[clock])
    trainer.fit(module, DataLoader(Pairs(), batch_size=1, shuffle=False))
    assert clock.count == args.iterations, clock.count
    wall, cpu = clock.wall_end - clock.wall, clock.cpu_end - clock.cpu
    return args.iterations / wall, args.iterations / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=os.environ.get("LIFT_CUT_REFERENCE", "/tmp/cut_ref"),
                        help="checkout of taesungp/contrastive-unpaired-translation")
    parser.add_argument("--models", default="cut,cyclegan", help="cut, fastcut, cyclegan")
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--lightning", action="store_true", help="also time Trainer.fit")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}, "
          f"{args.resolution}², batch 1, {args.iterations} iterations after {args.warmup} "
          f"warm-up, {args.repeats} repeats (medians)")
    phone, studio = load_textures(8, args.resolution)
    for kind in args.models.split(","):
        runs: dict[str, list[tuple[float, float]]] = {k: [] for k in VARIANTS}
        for _ in range(args.repeats):
            *its, ref_counts = run_reference(kind, args, phone, studio)
            runs["reference"].append(its)
            *its, ours_counts = run_ours(kind, args, phone, studio)
            runs["ours"].append(its)
            *its, _ = run_ours(kind, args, phone, studio, fused=True)
            runs["ours_fused"].append(its)
            if args.lightning:
                runs["trainer"].append(run_lightning(kind, args, phone, studio))
            print(f"  {kind} repeat: " + ", ".join(  # it/s wall per variant, as measured
                f"{k} {v[-1][0]:.3f}" for k, v in runs.items() if v), flush=True)
        assert ours_counts == ref_counts, (ours_counts, ref_counts)
        print(f"\n{kind}: parameters {ours_counts} (ours == reference)")
        ref = runs["reference"]
        for name, label in VARIANTS.items():
            if not runs[name]:
                continue
            wall = statistics.median(r[0] for r in runs[name])
            cpu = statistics.median(r[1] for r in runs[name])
            line = f"  {label:34s} {wall:7.3f} it/s wall {cpu:7.3f} it/CPU-s"
            if name != "reference":  # median of the per-repeat ratios (alternating runs)
                rw = statistics.median(o[0] / r[0] for o, r in zip(runs[name], ref))
                rc = statistics.median(o[1] / r[1] for o, r in zip(runs[name], ref))
                line += f"   ours/reference {rw:.2f}x wall, {rc:.2f}x CPU"
            print(line, flush=True)


VARIANTS = {
    "reference": "reference",
    "ours": "ours, plain loop, same Adam",
    "ours_fused": "ours, plain loop, fused Adam",
    "trainer": "ours, Trainer.fit, fused Adam",
}


if __name__ == "__main__":
    main()
