"""Batched W+ inversion (Eq. 1) of many textures at once, each texture independent.

Independence is by construction, so a texture's code does not depend on its batch
neighbours (tested): the loss is a *sum* of per-texture losses (gradients do not mix),
Adam is applied element-wise with a per-texture step count and learning rate, the latent
noise of each texture comes from its own generator seeded by its stem, and early stopping
looks at a texture's own losses only. That makes continuous batching possible: a texture
that is done leaves the batch and the next queued texture takes its slot, so the batch
stays full while textures finish at different steps.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from lift.components import StyleGenerator
from lift.inversion.codes import LatentCode
from lift.inversion.objective import InversionObjective
from lift.inversion.schedule import ProjectorSchedule
from lift.inversion.stopping import PlateauStop


@dataclass
class InversionResult:
    """One texture's code and its final (noise-free) loss terms."""

    stem: str
    w_plus: torch.Tensor        # [num_ws, w_dim]
    loss: float
    mse: float
    perceptual: float
    steps: int


def stem_seed(seed: int, stem: str) -> int:
    """A stable 63-bit seed from the run seed and a texture's stem (not Python's hash)."""
    return int(hashlib.sha256(f"{seed}:{stem}".encode()).hexdigest()[:15], 16)


@torch.no_grad()
def w_statistics(generator: StyleGenerator, num_samples: int, seed: int,
                 device: torch.device, chunk: int = 4096) -> tuple[torch.Tensor, float]:
    """Mean ``[w_dim]`` and scalar spread of W over ``num_samples`` mapped Gaussian z.

    The spread is ``sqrt(E ||w - w_avg||^2)`` (the reference projectors' ``w_std``), the unit
    of the latent noise.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ws = []
    for start in range(0, num_samples, chunk):
        n = min(chunk, num_samples - start)
        z = torch.randn(n, generator.z_dim, generator=gen).to(device)
        ws.append(generator.map(z)[:, 0].float())
    w = torch.cat(ws)
    w_avg = w.mean(0)
    w_std = float((w - w_avg).square().sum(1).mean().sqrt())
    return w_avg, w_std


@contextlib.contextmanager
def optimising() -> Iterator[None]:
    """Autograd on, even inside Lightning's predict/test (which run under inference_mode)."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


class BatchedInverter:
    """Optimises one code per texture with Adam under the projector schedule.

    Usage: :meth:`add` textures (any number, any time), then :meth:`run`; ``run(drain=False)``
    steps only while a full batch is in flight (so a caller that streams textures in keeps
    batches full), ``run(drain=True)`` finishes everything.
    """

    def __init__(
        self,
        generator: StyleGenerator,      # G_phone; frozen here
        objective: InversionObjective,  # Eq. 1, per texture
        code: LatentCode,               # W+ or W
        schedule: ProjectorSchedule,
        batch_size: int,                # textures optimised together
        early_stop: PlateauStop | None = None,  # None: every texture runs schedule.steps
        adam_betas: tuple[float, float] = (0.9, 0.999),
        adam_eps: float = 1e-8,
        w_stats_samples: int = 10000,   # z draws for w_avg (the initial code) and w_std
        seed: int = 0,                  # latent-noise seed (combined with each stem)
        noise_mode: str = "const",      # synthesis noise; "const": the bank holds W+ only
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.generator = generator.requires_grad_(False)
        self.objective = objective
        self.code = code
        self.schedule = schedule
        self.batch_size = batch_size
        self.early_stop = early_stop
        self.betas = adam_betas
        self.eps = adam_eps
        self.w_stats_samples = w_stats_samples
        self.seed = seed
        self.noise_mode = noise_mode
        self.num_ws = int(generator.num_ws)
        self._w_stats: tuple[torch.Tensor, float] | None = None
        self._queue: list[tuple[str, torch.Tensor, torch.Tensor | None]] = []
        self._active: dict[str, object] | None = None
        self.steps_run = 0          # batched optimisation steps so far (for benchmarks)
        self.texture_steps = 0      # sum over textures of their steps

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def w_stats(self) -> tuple[torch.Tensor, float]:
        if self._w_stats is None:
            self._w_stats = w_statistics(self.generator, self.w_stats_samples, self.seed,
                                         self.device)
        return self._w_stats

    @property
    def in_flight(self) -> int:
        return len(self._queue) + (len(self._active["stems"]) if self._active else 0)

    def add(self, stems: Sequence[str], images: torch.Tensor, masks: torch.Tensor | None) -> None:
        """Queue textures ``images`` ``[B,3,R,R]`` in [0,1] (``masks`` ``[B,1,R,R]`` or None)."""
        res = self.generator.resolution
        assert images.ndim == 4 and images.shape[0] == len(stems), (images.shape, len(stems))
        if images.shape[-1] != res or images.shape[-2] != res:
            raise ValueError(f"textures are {tuple(images.shape[-2:])} but the generator makes "
                             f"{res}x{res}; set the data module's resolution to {res}")
        for i, stem in enumerate(stems):
            self._queue.append((stem, images[i].detach().clone(),
                                None if masks is None else masks[i].detach().clone()))

    def invert(self, stems: Sequence[str], images: torch.Tensor,
               masks: torch.Tensor | None = None) -> list[InversionResult]:
        """Invert ``images`` and return their results in ``stems`` order."""
        self.add(stems, images, masks)
        by_stem = {r.stem: r for r in self.run(drain=True)}
        return [by_stem[s] for s in stems]

    def run(self, drain: bool) -> list[InversionResult]:
        results: list[InversionResult] = []
        while True:
            self._fill()
            active = self._active
            if active is None:
                break
            if not drain and len(active["stems"]) < self.batch_size:
                break  # wait for more textures rather than run a partial batch
            done = self._step()
            if done.any():
                results += self._finish(done)
        return results

    # --- what subclasses change (e.g. the encoder-initialised inverter) ---------------------

    def initial_params(self, images: torch.Tensor, masks: torch.Tensor | None) -> torch.Tensor:
        """Initial free parameters of textures ``images`` ``[n,3,R,R]``: every row at w_avg."""
        w_avg, _ = self.w_stats
        return self.code.init(w_avg.to(self.device), self.num_ws, images.shape[0])

    def regulariser(self, params: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor | None:
        """A per-texture ``[n]`` term added to Eq. 1 while optimising (``anchor``: the initial
        parameters); None: Eq. 1 alone."""
        return None

    # --- internals ------------------------------------------------------------------------

    def _fill(self) -> None:
        free = self.batch_size - (len(self._active["stems"]) if self._active else 0)
        if free <= 0 or not self._queue:
            return
        new, self._queue = self._queue[:free], self._queue[free:]
        device = self.device
        n = len(new)
        target = torch.stack([img for _, img, _ in new]).to(device)
        mask = None if new[0][2] is None else torch.stack([m for _, _, m in new]).to(device)
        params = self.initial_params(target, mask)
        rows = {
            "stems": [s for s, _, _ in new],
            "rngs": [torch.Generator(device="cpu").manual_seed(stem_seed(self.seed, s))
                     for s, _, _ in new],
            "target": target,
            "mask": mask,
            "params": params,
            "anchor": params,  # the initial code (never updated in place)
            "m": torch.zeros_like(params),
            "v": torch.zeros_like(params),
            "step": torch.zeros(n, dtype=torch.long),
            "best": torch.full((n,), float("inf")),
            "since_best": torch.zeros(n, dtype=torch.long),
        }
        if self._active is None:
            self._active = rows
            return
        for key, value in rows.items():
            old = self._active[key]
            if isinstance(value, list):
                self._active[key] = old + value
            elif value is None or old is None:
                if (value is None) != (old is None):
                    raise ValueError("textures with and without masks cannot be mixed")
            else:
                self._active[key] = torch.cat([old, value])

    def _step(self) -> torch.Tensor:
        """One Adam step for every active texture; returns the mask of textures now done."""
        a = self._active
        step = a["step"]
        device = self.device
        lr = self.schedule.learning_rate(step).to(device)
        noise_scale = self.schedule.noise_scale(step)
        if bool((noise_scale > 0).any()):  # w_std only where there is latent noise
            noise_scale = noise_scale * self.w_stats[1]
        params = a["params"]
        noise = torch.zeros_like(params)
        for i in torch.nonzero(noise_scale > 0).flatten().tolist():
            # each texture's own stream: its noise never depends on its neighbours
            noise[i] = torch.randn(params.shape[1:], generator=a["rngs"][i]).to(device)
        p = params.detach().requires_grad_(True)
        noisy = p + noise_scale.to(device)[:, None, None] * noise
        ws = self.code.to_wplus(noisy, self.num_ws)
        terms = self.objective(self.generator.synthesize(ws, noise_mode=self.noise_mode),
                               a["target"], a["mask"])
        loss = terms["loss"]
        extra = self.regulariser(p, a["anchor"])
        if extra is not None:
            loss = loss + extra
        (grad,) = torch.autograd.grad(loss.sum(), p)  # sum: per-texture gradients stay apart
        b1, b2 = self.betas
        step = step + 1
        a["m"] = b1 * a["m"] + (1 - b1) * grad
        a["v"] = b2 * a["v"] + (1 - b2) * grad.square()
        bc1 = (1 - b1 ** step.double()).float().to(device)[:, None, None]
        bc2 = (1 - b2 ** step.double()).float().to(device)[:, None, None]
        update = (a["m"] / bc1) / ((a["v"] / bc2).sqrt() + self.eps)
        a["params"] = (params - lr[:, None, None] * update).detach()
        a["step"] = step
        self.steps_run += 1
        self.texture_steps += len(a["stems"])
        done = step >= self.schedule.steps
        if self.early_stop is not None:
            a["best"], a["since_best"], stop = self.early_stop.update(
                loss.detach().cpu(), a["best"], a["since_best"], step)
            done = done | stop
        return done

    @torch.no_grad()
    def _finish(self, done: torch.Tensor) -> list[InversionResult]:
        """Evaluate the finished textures without noise, then drop them from the batch."""
        a = self._active
        idx = torch.nonzero(done).flatten()
        dev_idx = idx.to(self.device)
        params = a["params"][dev_idx]
        ws = self.code.to_wplus(params, self.num_ws)
        mask = None if a["mask"] is None else a["mask"][dev_idx]
        terms = self.objective(self.generator.synthesize(ws, noise_mode=self.noise_mode),
                               a["target"][dev_idx], mask)
        results = [
            InversionResult(
                stem=a["stems"][i], w_plus=ws[j].detach().float().cpu().clone(),
                loss=float(terms["loss"][j]), mse=float(terms["mse"][j]),
                perceptual=float(terms["perceptual"][j]), steps=int(a["step"][i]),
            )
            for j, i in enumerate(idx.tolist())
        ]
        keep = torch.nonzero(~done).flatten()
        if keep.numel() == 0:
            self._active = None
            return results
        dev_keep = keep.to(self.device)
        kept = set(keep.tolist())
        for key, value in list(a.items()):
            if isinstance(value, list):
                a[key] = [v for i, v in enumerate(value) if i in kept]
            elif value is not None:
                a[key] = value[dev_keep] if value.device == self.device else value[keep]
        return results
