"""Encoder-initialised inversion (Luo et al. 2021, seed 002): predict W+, then refine Eq. 1.

A W+ encoder, trained once on G_phone's own samples (and optionally on latent-bank pairs),
predicts a texture's code in one pass; a short optimisation of Eq. 1 (the same objective,
code space and per-texture Adam as :class:`~lift.inversion.settings.InversionSettings`)
plus an L2 anchor to the encoder's prediction finishes it::

    W+_i = argmin  ||G(W+) - I_i||^2 + LPIPS(G(W+), I_i) + anchor_weight * mean((W+ - E(I_i))^2)

Parts:

- :class:`WPlusEncoder`: the encoder contract (texture + mask -> W+); the CNN is a plugin
  (``lift_stylegan2.wplus_encoder.ConvWPlusEncoder``);
- :class:`EncoderTraining`: the one-off training recipe (sample codes, render, random
  visibility masks, latent L2 + Eq. 1 image loss; optional bank pairs);
- :func:`trained_encoder`: trains on first use and caches the weights on disk, keyed by
  G_phone's fingerprint and every setting that changes the result (atomic write, file lock);
- :class:`EncoderInitialisedInverter`: a :class:`~lift.inversion.inverter.BatchedInverter`
  that starts each texture at the encoder's prediction and adds the anchor term;
- :class:`EncoderInversionSettings`: an ``InversionSettings`` (same interface: ``.inverter(G)``,
  ``.distance``, ``.use_mask``), so the inversion stage and StyleGAN-W+'s test-time inversion
  use it unchanged, and the bank's manifest records it like any settings.
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from lift.atomic import atomic_path
from lift.components import PerceptualDistance, StyleGenerator
from lift.inversion.codes import LatentCode
from lift.inversion.inverter import BatchedInverter, optimising
from lift.inversion.objective import InversionObjective
from lift.inversion.schedule import ProjectorSchedule
from lift.inversion.settings import InversionSettings
from lift.inversion.stopping import PlateauStop
from lift.spec import Recordable, build, spec_of

log = logging.getLogger(__name__)

ENCODER_FORMAT = 1


class WPlusEncoder(Recordable, nn.Module, abc.ABC):
    """Texture ``[B,3,R,R]`` in [0,1] and mask ``[B,1,R,R]`` (or None) -> W+ ``[B,num_ws,w_dim]``.

    Built by :func:`build_encoder` with the generator's geometry (``resolution``,
    ``ws_resolutions``, ``w_dim``) added to the configured arguments. ``bind(w_avg, w_scale)``
    gives it W's mean and per-dimension spread (``[w_dim]`` each) before training; an
    encoder keeps them in buffers, so they travel with its weights.
    """

    num_ws: int

    @abc.abstractmethod
    def bind(self, w_avg: torch.Tensor, w_scale: torch.Tensor) -> None:
        """Receive W's mean and per-dimension spread before training."""

    @abc.abstractmethod
    def forward(self, texture: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """W+ codes ``[B, num_ws, w_dim]`` of textures (holes given by ``mask``)."""


def ws_resolutions_of(generator: StyleGenerator) -> list[int]:
    """The resolution each W+ row modulates: ``synthesis.ws_resolutions`` where the generator
    has it, else the rows spread evenly from 4 to the output resolution."""
    known = getattr(getattr(generator, "synthesis", None), "ws_resolutions", None)
    if known is not None:
        return [int(r) for r in known]
    n, top = int(generator.num_ws), int(math.log2(generator.resolution))
    return [2 ** (2 + round(i * (top - 2) / max(1, n - 1))) for i in range(n)]


def build_encoder(class_path: str, args: Mapping[str, Any], generator: StyleGenerator
                  ) -> WPlusEncoder:
    """The encoder ``class_path(**args)`` sized for ``generator`` (its resolution, W+ rows'
    resolutions and w_dim are added to ``args``)."""
    encoder = build({"class_path": class_path, "init_args": dict(args)}, where="encoder",
                    resolution=int(generator.resolution),
                    ws_resolutions=ws_resolutions_of(generator), w_dim=int(generator.w_dim))
    if not isinstance(encoder, WPlusEncoder):
        raise TypeError(f"encoder {class_path!r} is not a lift.inversion.encoder.WPlusEncoder")
    if encoder.num_ws != generator.num_ws:
        raise ValueError(f"encoder predicts {encoder.num_ws} W+ rows, the generator has "
                         f"{generator.num_ws}")
    return encoder


# --- training data: G_phone's own samples ----------------------------------------------------


def random_visibility_masks(num: int, resolution: int, gen: torch.Generator,
                            keep_all: float = 0.2) -> torch.Tensor:
    """Phone-like visibility masks ``[num,1,R,R]``: 1-5 elliptic holes (top corners, a band
    at the bottom, anywhere), none for a ``keep_all`` fraction."""
    r = resolution
    yy, xx = torch.meshgrid(torch.linspace(0, 1, r), torch.linspace(0, 1, r), indexing="ij")
    masks = torch.ones(num, 1, r, r)
    for i in range(num):
        if float(torch.rand((), generator=gen)) < keep_all:
            continue
        for _ in range(int(torch.randint(1, 6, (), generator=gen))):
            cy, cx, ry, rx = torch.rand(4, generator=gen).tolist()
            kind = float(torch.rand((), generator=gen))
            if kind < 0.35:    # a top corner (back / top of the head)
                cy, cx = 0.15 * cy, (0.2 * cx if cx < 0.5 else 1 - 0.2 * (1 - cx))
            elif kind < 0.6:   # a band near the bottom (neck)
                cy, cx, rx = 0.8 + 0.2 * cy, 0.3 + 0.4 * cx, 0.6 + rx
            hole = (((yy - cy) / (0.04 + 0.2 * ry)) ** 2
                    + ((xx - cx) / (0.04 + 0.25 * rx)) ** 2) < 1
            masks[i, 0][hole] = 0
    return masks


@torch.no_grad()
def w_spread(generator: StyleGenerator, num: int, gen: torch.Generator
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """W's mean and per-dimension standard deviation over ``num`` mapped Gaussian z."""
    z = torch.randn(num, generator.z_dim, generator=gen).to(_device(generator))
    w = generator.map(z)[:, 0].float()
    return w.mean(0), w.std(0).clamp(min=1e-6)


@torch.no_grad()
def sample_codes(generator: StyleGenerator, num: int, gen: torch.Generator,
                 style_mixing: float, wplus_noise: float, w_scale: torch.Tensor) -> torch.Tensor:
    """W+ codes ``[num,num_ws,w_dim]`` of G's own distribution, widened towards W+ inversions:
    a ``style_mixing`` fraction takes an independent z per row (Z+), and every code gets
    per-row Gaussian noise of ``u * wplus_noise * w_scale`` (``u`` uniform in [0,1] per code)."""
    device = _device(generator)
    n_ws, z_dim = int(generator.num_ws), int(generator.z_dim)
    z = torch.randn(num, n_ws, z_dim, generator=gen)
    shared = torch.rand(num, generator=gen) >= style_mixing
    z[shared] = z[shared, :1].expand(-1, n_ws, -1)
    w = generator.map(z.reshape(-1, z_dim).to(device))[:, 0].float().reshape(num, n_ws, -1)
    u = torch.rand(num, 1, 1, generator=gen)
    noise = torch.randn(w.shape, generator=gen) * u * wplus_noise
    return w + noise.to(device) * w_scale.to(device)


@torch.no_grad()
def render(generator: StyleGenerator, ws: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """G(W+) as textures in [0,1] (const noise, as the bank), ``[N,3,R,R]``."""
    out = [((generator.synthesize(ws[i:i + chunk], noise_mode="const") + 1) / 2).clamp(0, 1)
           for i in range(0, ws.shape[0], chunk)]
    return torch.cat(out)


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


# --- the training recipe ---------------------------------------------------------------------


class EncoderTraining(Recordable):
    """How the encoder is trained, once per G_phone (CPU-sized by default).

    Phases, each optional (0 steps):

    1. ``latent_steps`` steps on ``samples`` pre-rendered G(W+) samples (codes from
       :func:`sample_codes`), a fresh random visibility mask every step: latent L2 in units
       of W's per-dimension spread (cheap: G is not in the loop);
    2. ``image_steps`` steps on fresh samples with ``latent_weight`` x latent L2 +
       ``image_weight`` x Eq. 1 (MSE + the settings' perceptual distance over visible texels)
       of G(E(x)) against x, back-propagated through G (batch ``image_batch_size``);
    3. ``bank_steps`` steps on latent-bank pairs (phone texture, its Eq. 1 code) of the bank
       at ``bank`` with the same two losses; the textures come from ``bank_source``
       (``{"synthetic": profile, "seed": s}`` or ``{"folder": path}``; None: the bank codes'
       own renders G(W+), i.e. the bank's region of W+ without the phone domain).

    Args:
        samples: pre-rendered samples of phase 1.
        latent_steps, image_steps, bank_steps: optimiser steps of the three phases.
        batch_size: batch of phase 1; ``image_batch_size``: of phases 2 and 3.
        lr: Adam learning rate (cosine decay to 10% within each phase).
        style_mixing: fraction of samples with an independent z per W+ row.
        wplus_noise: per-row Gaussian noise on the codes, in units of W's spread (times a
            uniform draw per sample), so the samples reach where W+ inversions lie.
        random_masks: apply random phone-like visibility masks to the inputs.
        latent_weight, image_weight: weights of the two losses (phases 2, 3).
        seed: every draw (codes, masks, initial weights).
    """

    def __init__(self, samples: int = 1024, latent_steps: int = 800, image_steps: int = 100,
                 bank_steps: int = 0, batch_size: int = 32, image_batch_size: int = 8,
                 lr: float = 1e-3, style_mixing: float = 0.5, wplus_noise: float = 1.0,
                 random_masks: bool = True, latent_weight: float = 1.0,
                 image_weight: float = 1.0, bank: str | None = None,
                 bank_source: dict | None = None, seed: int = 0):
        if bank_steps and bank is None:
            raise ValueError("EncoderTraining: bank_steps > 0 needs a bank directory")
        self.samples = samples
        self.latent_steps = latent_steps
        self.image_steps = image_steps
        self.bank_steps = bank_steps
        self.batch_size = batch_size
        self.image_batch_size = image_batch_size
        self.lr = lr
        self.style_mixing = style_mixing
        self.wplus_noise = wplus_noise
        self.random_masks = random_masks
        self.latent_weight = latent_weight
        self.image_weight = image_weight
        self.bank = bank
        self.bank_source = dict(bank_source) if bank_source else None
        self.seed = seed

    # phases -------------------------------------------------------------------------------

    def _masks(self, num: int, resolution: int, gen: torch.Generator, device) -> torch.Tensor | None:
        if not self.random_masks:
            return None
        return random_visibility_masks(num, resolution, gen).to(device)

    @staticmethod
    def _latent_loss(pred: torch.Tensor, target: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return ((pred - target) / scale).square().mean()

    def _image_loss(self, generator, objective, pred, target, mask) -> torch.Tensor:
        image = generator.synthesize(pred, noise_mode="const")
        if mask is None and objective.use_mask:
            mask = torch.ones_like(target[:, :1])
        return objective(image, target, mask)["loss"].mean()

    def train(self, encoder: WPlusEncoder, generator: StyleGenerator,
              objective: InversionObjective) -> dict[str, Any]:
        """Train ``encoder`` in place; returns per-phase seconds (wall, CPU) and final losses."""
        device = _device(generator)
        generator.requires_grad_(False)
        encoder.to(device).train()
        gen = torch.Generator().manual_seed(self.seed)
        res = int(generator.resolution)
        w_avg, w_scale = w_spread(generator, 4096, gen)
        encoder.bind(w_avg, w_scale)
        scale = w_scale.to(device)
        stats: dict[str, Any] = {}

        def phase(name, steps, batch_fn, loss_fn):
            if steps <= 0:
                return
            opt = torch.optim.Adam(encoder.parameters(), lr=self.lr, betas=(0.9, 0.99))
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda k: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / steps)))
            wall, cpu = time.perf_counter(), time.process_time()
            recent: list[float] = []
            # A one-off of minutes on a CPU: show it (the stage's own bar starts after it).
            bar = tqdm(range(steps), desc=f"training the W+ encoder ({name} phase)",
                       leave=False, mininterval=2.0)
            for _ in bar:
                x, m, w = batch_fn()
                loss = loss_fn(encoder(x, m), x, m, w)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                recent = (recent + [float(loss.detach())])[-20:]
                bar.set_postfix(loss=f"{recent[-1]:.4g}", refresh=False)
            stats[name] = {"steps": steps, "wall_s": time.perf_counter() - wall,
                           "cpu_s": time.process_time() - cpu,
                           "final_loss": sum(recent) / len(recent)}
            log.info("encoder %s phase: %d steps, %.1f s, loss %.4g", name, steps,
                     stats[name]["wall_s"], stats[name]["final_loss"])

        with optimising():
            if self.latent_steps > 0:
                wall, cpu = time.perf_counter(), time.process_time()
                codes = sample_codes(generator, self.samples, gen, self.style_mixing,
                                     self.wplus_noise, w_scale)
                images = render(generator, codes)
                stats["render"] = {"samples": self.samples, "wall_s": time.perf_counter() - wall,
                                   "cpu_s": time.process_time() - cpu}

                def latent_batch():
                    idx = torch.randint(0, self.samples, (self.batch_size,), generator=gen)
                    dev_idx = idx.to(device)
                    return (images[dev_idx], self._masks(len(idx), res, gen, device),
                            codes[dev_idx])

                phase("latent", self.latent_steps, latent_batch,
                      lambda p, x, m, w: self._latent_loss(p, w, scale))

            def image_loss(p, x, m, w):
                loss = self.image_weight * self._image_loss(generator, objective, p, x, m)
                if self.latent_weight:
                    loss = loss + self.latent_weight * self._latent_loss(p, w, scale)
                return loss

            def image_batch():
                w = sample_codes(generator, self.image_batch_size, gen, self.style_mixing,
                                 self.wplus_noise, w_scale)
                return render(generator, w), self._masks(len(w), res, gen, device), w

            phase("image", self.image_steps, image_batch, image_loss)

            if self.bank_steps > 0:
                bank_x, bank_m, bank_w = self._bank_pairs(generator)

                def bank_batch():
                    idx = torch.randint(0, len(bank_w), (self.image_batch_size,), generator=gen)
                    m = (bank_m[idx] if bank_m is not None
                         else self._masks(len(idx), res, gen, "cpu"))
                    return (bank_x[idx].to(device), None if m is None else m.to(device),
                            bank_w[idx].to(device))

                phase("bank", self.bank_steps, bank_batch, image_loss)
        encoder.eval()
        return stats

    def _bank_pairs(self, generator: StyleGenerator):
        from lift.latent_bank import LatentBank

        bank = LatentBank.open(self.bank)
        bank.check_complete()
        codes = bank.tensor().float()
        if codes.shape[1:] != (generator.num_ws, generator.w_dim):
            raise ValueError(f"bank {self.bank}: codes {tuple(codes.shape[1:])} do not fit the "
                             f"generator ({generator.num_ws}, {generator.w_dim})")
        if self.bank_source is None:
            return render(generator, codes.to(_device(generator))).cpu(), None, codes
        from lift.data import FolderSource, SyntheticSource, TextureDataset

        src = self.bank_source
        if "synthetic" in src:
            source = SyntheticSource(src["synthetic"], int(src.get("seed", 0)))
        elif "folder" in src:
            source = FolderSource(src["folder"])
        else:
            raise ValueError(f"bank_source {src!r}: give 'synthetic' (+ 'seed') or 'folder'")
        ds = TextureDataset(source, "all", resolution=int(generator.resolution))
        where = {s: i for i, s in enumerate(ds.stems)}
        missing = [s for s in bank.stems if s not in where]
        if missing:
            raise ValueError(f"bank_source lacks {len(missing)} of the bank's stems "
                             f"(e.g. {missing[:3]})")
        items = [ds[where[s]] for s in bank.stems]
        return (torch.stack([it["phone"] for it in items]),
                torch.stack([it["mask"] for it in items]), codes)


# --- caching ---------------------------------------------------------------------------------


def _bank_identity(path: str | None) -> str | None:
    if path is None:
        return None
    manifest = Path(path) / "manifest.json"
    shards = sorted(Path(path).glob("shard_*.safetensors"))
    digest = hashlib.sha256(manifest.read_bytes() if manifest.exists() else b"")
    for shard in shards:
        digest.update(shard.name.encode())
        digest.update(shard.read_bytes())
    return digest.hexdigest()


def encoder_key(generator_fingerprint: str, encoder: str, encoder_args: Mapping[str, Any],
                training: EncoderTraining, objective_spec: Mapping[str, Any]) -> str:
    """sha256 of everything that determines the trained weights."""
    payload = {"format": ENCODER_FORMAT, "generator": generator_fingerprint,
               "encoder": [encoder, dict(encoder_args)],
               "training": spec_of(training, "training"),
               "bank": _bank_identity(training.bank), "objective": dict(objective_spec)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock (ranks and processes training the same encoder wait for the first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except (ImportError, OSError):  # pragma: no cover - no flock: no waiting
            pass
        yield


def trained_encoder(encoder: str, encoder_args: Mapping[str, Any], training: EncoderTraining,
                    generator: StyleGenerator, objective: InversionObjective,
                    cache_dir: str | os.PathLike | None,
                    checkpoint: str | os.PathLike | None = None) -> tuple[WPlusEncoder, dict]:
    """The encoder for ``generator``: from ``checkpoint`` if given, else from
    ``cache_dir/wplus_encoder_<key>.pt`` (trained and written atomically when absent)."""
    # Built and trained with autograd on, even when the first inverter is made inside
    # Lightning's predict (inference mode): parameters made there could not be trained.
    with optimising():
        return _trained_encoder(encoder, encoder_args, training, generator, objective,
                                cache_dir, checkpoint)


def _trained_encoder(class_path, encoder_args, training, generator, objective, cache_dir,
                     checkpoint):
    from lift.latent_bank import state_dict_fingerprint

    encoder = build_encoder(class_path, encoder_args, generator)
    fingerprint = state_dict_fingerprint(generator)
    objective_spec = {"distance": spec_of(objective.distance, "distance"),
                      "mse_weight": objective.mse_weight,
                      "perceptual_weight": objective.perceptual_weight,
                      "use_mask": objective.use_mask}
    key = encoder_key(fingerprint, class_path, encoder_args, training, objective_spec)
    if checkpoint is not None:
        path = Path(checkpoint)
        lock = contextlib.nullcontext()
    else:
        if cache_dir is None:
            raise ValueError("encoder inversion: give cache_dir (where the trained encoder is "
                             "kept) or encoder_checkpoint")
        path = Path(cache_dir) / f"wplus_encoder_{key[:16]}.pt"
        lock = _file_lock(path.with_suffix(".lock"))
    with lock:
        if path.exists():
            blob = torch.load(path, map_location="cpu", weights_only=True)
            if blob.get("generator") != fingerprint:
                raise ValueError(f"{path}: this encoder was trained for another G_phone "
                                 f"(fingerprint {str(blob.get('generator'))[:12]}..., this one "
                                 f"{fingerprint[:12]}...)")
            encoder.load_state_dict(blob["state_dict"])
            encoder.to(_device(generator)).eval()
            log.info("loaded the W+ encoder from %s", path)
            return encoder, dict(blob.get("stats") or {}, path=str(path), trained=False)
        if checkpoint is not None:
            raise FileNotFoundError(f"encoder_checkpoint {path} does not exist")
        log.info("training the W+ encoder for G_phone %s... (once; cached in %s)",
                 fingerprint[:12], path)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(training.seed)
            encoder = build_encoder(class_path, encoder_args, generator)
        stats = training.train(encoder, generator, objective)
        blob = {"format": ENCODER_FORMAT, "key": key, "generator": fingerprint,
                "encoder": json.dumps([class_path, dict(encoder_args)]), "stats": stats,
                "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()}}
        with atomic_path(path) as tmp:
            torch.save(blob, tmp)
        return encoder, dict(stats, path=str(path), trained=True)


# --- the inverter ----------------------------------------------------------------------------


class EncoderInitialisedInverter(BatchedInverter):
    """:class:`BatchedInverter` whose codes start at the encoder's prediction E(I) and whose
    loss adds ``anchor_weight * mean((params - E(I))^2)`` per texture (mean over the code's
    elements). The reported loss (``InversionResult.loss``) is Eq. 1 alone."""

    def __init__(self, generator: StyleGenerator, objective: InversionObjective,
                 code: LatentCode, schedule: ProjectorSchedule, batch_size: int,
                 encoder: WPlusEncoder, anchor_weight: float, **kwargs):
        super().__init__(generator, objective, code, schedule, batch_size, **kwargs)
        self.encoder = encoder.to(self.device).eval().requires_grad_(False)
        self.anchor_weight = anchor_weight

    @torch.no_grad()
    def predict(self, images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """The encoder's W+ codes ``[B,num_ws,w_dim]`` of textures in [0,1]."""
        return self.encoder(images.to(self.device),
                            None if masks is None else masks.to(self.device)).float()

    def initial_params(self, images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        return self.code.from_wplus(self.predict(images, masks))

    def regulariser(self, params: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor | None:
        if not self.anchor_weight:
            return None
        return self.anchor_weight * (params - anchor).square().flatten(1).mean(1)


class EncoderInversionSettings(InversionSettings):
    """:class:`InversionSettings` whose inverter is encoder-initialised (same interface).

    Args (besides InversionSettings'; ``schedule`` is the *refinement*'s, typically a few
    dozen steps):
        encoder: the encoder's class (a :class:`WPlusEncoder`), e.g.
            ``lift_stylegan2.wplus_encoder.ConvWPlusEncoder``.
        encoder_args: its arguments besides the geometry (which comes from G_phone), e.g.
            ``{"channels": 32}``.
        training: the one-off training recipe (:class:`EncoderTraining`).
        anchor_weight: weight of the L2 anchor to the encoder's prediction.
        cache_dir: where trained encoders are kept (one file per G_phone and recipe); the
            first ``inverter(G)`` trains and writes it, later ones (other ranks, test time,
            a rebuilt manifest spec) load it.
        encoder_checkpoint: load this trained encoder file instead (no training).
    """

    def __init__(self, distance: PerceptualDistance, code: LatentCode,
                 schedule: ProjectorSchedule, mse_weight: float, perceptual_weight: float,
                 use_mask: bool, batch_size: int, early_stop: PlateauStop | None,
                 adam_betas: tuple[float, float], adam_eps: float, w_stats_samples: int,
                 seed: int, encoder: str, encoder_args: dict, training: EncoderTraining,
                 anchor_weight: float,
                 cache_dir: str | None = None, encoder_checkpoint: str | None = None):
        super().__init__(distance, code, schedule, mse_weight, perceptual_weight, use_mask,
                         batch_size, early_stop, adam_betas, adam_eps, w_stats_samples, seed)
        if anchor_weight < 0:
            raise ValueError(f"anchor_weight must be >= 0, got {anchor_weight}")
        if cache_dir is None and encoder_checkpoint is None:
            raise ValueError("EncoderInversionSettings: give cache_dir or encoder_checkpoint")
        self.encoder = encoder
        self.encoder_args = dict(encoder_args)
        self.training = training
        self.anchor_weight = anchor_weight
        self.cache_dir = cache_dir
        self.encoder_checkpoint = encoder_checkpoint
        self.encoder_stats: dict[str, Any] | None = None  # of the last encoder obtained

    def trained_encoder(self, generator: StyleGenerator) -> WPlusEncoder:
        encoder, self.encoder_stats = trained_encoder(
            self.encoder, self.encoder_args, self.training, generator, self.objective(), self.cache_dir,
            self.encoder_checkpoint)
        return encoder

    def inverter(self, generator: StyleGenerator) -> EncoderInitialisedInverter:
        """An :class:`EncoderInitialisedInverter` of ``generator`` (frozen) with these settings."""
        return EncoderInitialisedInverter(
            generator, self.objective(), self.code, self.schedule, self.batch_size,
            encoder=self.trained_encoder(generator), anchor_weight=self.anchor_weight,
            early_stop=self.early_stop, adam_betas=self.adam_betas, adam_eps=self.adam_eps,
            w_stats_samples=self.w_stats_samples, seed=self.seed)

