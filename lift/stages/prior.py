"""Stage 1: train the phone-texture prior G_phone / D_phone (StyleGAN2, config F).

One training iteration (manual optimisation, the reference loop's phase order):

1. ``generator``: non-saturating logistic loss of D(G(z)) (style mixing on), Adam step on G.
2. ``generator_reg`` every ``pl_interval`` iterations: path-length penalty (StyleGAN2 Eq. 4)
   on ``batch / pl_batch_shrink`` samples, multiplied by ``pl_interval`` (lazy regularisation).
3. ``discriminator``: logistic loss on D(real) and D(G(z)) (G frozen), Adam step on D.
4. ``discriminator_reg`` every ``r1_interval`` iterations: R1 (γ/2)||∇D(real)||² (the
   paper's Eq. 7), multiplied by ``r1_interval``.
5. EMA of G into ``generator_ema`` (half-life ``ema_kimg`` thousand images).

Lazy regularisation scales each Adam's lr by c = k/(k+1) and its betas to beta**c
(StyleGAN2 Appendix B). Every optimiser step counts as one Lightning ``global_step``: an
iteration is 2 steps plus 1 every ``pl_interval`` and 1 every ``r1_interval`` (2.3125 with the
defaults 4 and 16); ``self.iteration`` and ``self.seen_images`` count iterations and images.

Textures arrive in [0, 1] (``batch["phone"]``) and are mapped to [-1, 1] here, at the border;
generated images are mapped back to [0, 1] for image grids. Under DDP every rank draws its own
latents; gradients are averaged across ranks by this module (one all-reduce per optimiser step,
as the reference loop does), so the DDP strategy's own find-unused-parameters setting does not
matter for the G/D alternation.

The checkpoint holds everything needed to resume: ``generator.*``, ``discriminator.*``,
``generator_ema.*`` (what the inversion and translation stages load), the path-length mean,
iteration and image counters, the fixed grid latents, and both optimisers (Lightning's).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

import torch
from torch import nn

from lift.components import ImageDiscriminator, StyleGenerator
from lift.ema import beta_from_half_life, ema_update
from lift.losses import gan as losses
from lift.stages.base import StageModule


class PriorModule(StageModule):
    """LightningModule of the prior stage (G_phone, D_phone).

    Args:
        generator: G_phone, any :class:`~lift.components.StyleGenerator` (e.g.
            ``lift_stylegan2.networks.Generator``).
        discriminator: D_phone, any :class:`~lift.components.ImageDiscriminator`.
        lr, betas, eps: Adam for both networks (StyleGAN2: 0.002, (0, 0.99), 1e-8), before the
            lazy-regularisation correction.
        r1_gamma: R1 weight γ (Eq. 7; 10). 0 switches R1 off.
        r1_interval: lazy R1 every this many iterations (16).
        pl_weight: path-length weight (2). 0 switches it off; a generator whose
            ``regularizers`` lack ``"path_length"`` never gets it.
        pl_interval: lazy path-length every this many iterations (4).
        pl_decay: decay of the running mean path length (0.01).
        pl_batch_shrink: the path-length batch is ``batch // pl_batch_shrink`` (2).
        style_mixing_prob: probability that a batch mixes two latents at a random row (0.9).
        ema_kimg: half-life of the EMA generator in thousands of images (10).
        ema_rampup: if set, the half-life is at most ``ema_rampup * seen images`` (None: off).
        augment: differentiable augmentation applied to every image D sees (real and fake),
            e.g. ``lift_stylegan2.augment.DiffAugment``; None: none.
        loss_weights: weights of the named terms: ``adv`` (G and D logistic losses), ``r1``,
            ``path_length`` (already scaled by γ/2 and ``pl_weight``; keep them at 1, or 0 to
            switch a regulariser off) and any ``lift_extra_loss_terms`` plugin term.
        grid_size: number of fixed latents drawn by G_ema for the validation image grid.
        grid_seed: seed of those latents.
        truncation_psi: truncation of the grid images (1: none).
    """

    stage = "prior"
    recorded_components = ("generator", "discriminator")

    def __init__(
        self,
        generator: StyleGenerator,
        discriminator: ImageDiscriminator,
        lr: float = 0.002,
        betas: tuple[float, float] = (0.0, 0.99),
        eps: float = 1e-8,
        r1_gamma: float = 10.0,
        r1_interval: int = 16,
        pl_weight: float = 2.0,
        pl_interval: int = 4,
        pl_decay: float = 0.01,
        pl_batch_shrink: int = 2,
        style_mixing_prob: float = 0.9,
        ema_kimg: float = 10.0,
        ema_rampup: float | None = None,
        augment: nn.Module | None = None,
        loss_weights: dict[str, float] | None = None,
        grid_size: int = 8,
        grid_seed: int = 0,
        truncation_psi: float = 1.0,
    ):
        super().__init__(loss_weights if loss_weights is not None
                         else {"adv": 1.0, "r1": 1.0, "path_length": 1.0})
        self.save_hyperparameters(ignore=["generator", "discriminator", "augment"])
        self.automatic_optimization = False
        if not isinstance(generator, StyleGenerator):
            raise TypeError(f"generator {type(generator).__name__} is not a "
                            "lift.components.StyleGenerator")
        if getattr(discriminator, "resolution", generator.resolution) != generator.resolution:
            raise ValueError(f"generator resolution {generator.resolution} != discriminator "
                             f"resolution {discriminator.resolution}")
        for name, value in (("r1_interval", r1_interval), ("pl_interval", pl_interval),
                            ("pl_batch_shrink", pl_batch_shrink)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0 <= style_mixing_prob <= 1:
            raise ValueError(f"style_mixing_prob must be in [0, 1], got {style_mixing_prob}")
        self.generator = generator
        self.discriminator = discriminator
        self.generator_ema = copy.deepcopy(generator).requires_grad_(False).eval()
        self.augment = augment
        self.lr, self.betas, self.eps = lr, tuple(betas), eps
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval
        self.pl_weight, self.pl_interval = pl_weight, pl_interval
        self.pl_decay, self.pl_batch_shrink = pl_decay, pl_batch_shrink
        self.style_mixing_prob = style_mixing_prob
        self.ema_kimg, self.ema_rampup = ema_kimg, ema_rampup
        self.truncation_psi = truncation_psi
        self.register_buffer("pl_mean", torch.zeros([]))
        self.register_buffer("iteration", torch.zeros([], dtype=torch.long))
        self.register_buffer("seen_images", torch.zeros([], dtype=torch.long))
        grid = torch.Generator().manual_seed(grid_seed)
        self.register_buffer("grid_z", torch.randn(grid_size, generator.z_dim, generator=grid))

    # --- helpers ---------------------------------------------------------------------------------

    @property
    def r1_active(self) -> bool:
        return self.r1_gamma != 0 and "r1" in self.active_terms

    @property
    def pl_active(self) -> bool:
        return (self.pl_weight != 0 and "path_length" in self.active_terms
                and "path_length" in self.generator.regularizers)

    def _phase_terms(self, phase: str) -> frozenset[str]:
        return frozenset({"generator": {"adv"}, "discriminator": {"adv"},
                          "generator_reg": {"path_length"},
                          "discriminator_reg": {"r1"}}.get(phase, set()))

    def _reals(self, batch: Mapping[str, Any]) -> torch.Tensor:
        phone = batch["phone"]
        res, ch = self.generator.resolution, self.generator.img_channels
        if phone.ndim != 4 or phone.shape[1:] != (ch, res, res):
            raise ValueError(
                f"prior stage: phone textures are {tuple(phone.shape[1:])} but the generator "
                f"makes {(ch, res, res)}; set the data module's resolution to {res}")
        return phone * 2 - 1  # [0, 1] -> [-1, 1]

    def _latents(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.generator.z_dim, device=self.device)

    def generate(self, n: int, update_w_avg: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """G(z) with style mixing: (images [N, C, R, R] in [-1, 1], ws [N, num_ws, w_dim])."""
        g = self.generator
        ws = g.map(self._latents(n), update_w_avg=update_w_avg)
        if self.style_mixing_prob > 0 and torch.rand(()) < self.style_mixing_prob:
            # Rows from `cutoff` on come from a second latent (one cutoff per batch).
            cutoff = int(torch.randint(1, g.num_ws, ()))
            ws2 = g.map(self._latents(n), update_w_avg=False)
            ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return g.synthesize(ws, noise_mode="random"), ws

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        if self.augment is not None:
            images = self.augment(images)
        return self.discriminator(images)

    def _log_now(self) -> bool:
        """Lightning writes step metrics every ``log_every_n_steps`` batches; calling
        ``self.log`` in between only costs time (a visible share for small networks)."""
        every = self.trainer.log_every_n_steps
        return every > 0 and (int(self.iteration) + 1) % every == 0

    def _world_size(self) -> int:
        return self.world_size()

    def _step(self, loss: torch.Tensor, optimizer: Any, module: nn.Module) -> None:
        self.synced_step(loss, optimizer, module.parameters())

    # --- training ------------------------------------------------------------------------------

    def on_train_start(self) -> None:
        self.seed_rank(int(self.iteration))  # own latents, noise and augmentation per rank

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        reals = self._reals(batch)
        n = reals.shape[0]
        it = int(self.iteration)
        log = self._log_now()
        g, d = self.generator, self.discriminator

        # 1. G main: non-saturating logistic loss.
        g.requires_grad_(True)
        d.requires_grad_(False)
        fakes, ws = self.generate(n)
        terms = {"adv": losses.g_nonsaturating_loss(self.discriminate(fakes))}
        loss = self.weighted_loss("generator", terms, batch, {"fakes": fakes, "ws": ws},
                                  log=log)
        self._step(loss, opt_g, g)

        # 2. G reg: lazy path-length regularisation (StyleGAN2 Eq. 4).
        if self.pl_active and it % self.pl_interval == 0:
            fakes, ws = self.generate(max(n // self.pl_batch_shrink, 1))
            penalty, pl_mean, _ = losses.path_length_penalty(fakes, ws, self.pl_mean,
                                                             self.pl_decay)
            self.pl_mean.copy_(pl_mean)
            terms = {"path_length": penalty * self.pl_weight}
            loss = self.weighted_loss("generator_reg", terms, batch, {"fakes": fakes, "ws": ws},
                                      log=log)
            self._step(loss * self.pl_interval, opt_g, g)
            if log:
                self.log("train/pl_mean", self.pl_mean, on_step=True)

        # 3. D main: logistic loss on reals and (frozen-G) fakes.
        g.requires_grad_(False)
        d.requires_grad_(True)
        with torch.no_grad():
            fakes, ws = self.generate(n)
        fake_logits = self.discriminate(fakes)
        real_logits = self.discriminate(reals)
        terms = {"adv": losses.d_logistic_loss(real_logits, fake_logits)}
        loss = self.weighted_loss("discriminator", terms, batch,
                                  {"fakes": fakes, "real_logits": real_logits,
                                   "fake_logits": fake_logits}, log=log)
        self._step(loss, opt_d, d)
        if log:
            self.log("train/d_real_logit", real_logits.detach().mean(), on_step=True)
            self.log("train/d_fake_logit", fake_logits.detach().mean(), on_step=True)

        # 4. D reg: lazy R1 on reals (the paper's Eq. 7).
        if self.r1_active and it % self.r1_interval == 0:
            reals_grad = reals.detach().requires_grad_(True)
            logits = self.discriminate(reals_grad)
            terms = {"r1": losses.d_r1_penalty(logits, reals_grad, self.r1_gamma)}
            loss = self.weighted_loss("discriminator_reg", terms, batch, {"real_logits": logits},
                                      log=log)
            self._step(loss * self.r1_interval, opt_d, d)
        g.requires_grad_(True)

        # 5. EMA generator and counters.
        batch_total = n * self._world_size()
        self.seen_images += batch_total
        self.iteration += 1
        half_life = self.ema_kimg * 1000
        if self.ema_rampup is not None:
            half_life = min(half_life, float(self.seen_images) * self.ema_rampup)
        ema_update(self.generator_ema, g, beta_from_half_life(half_life, batch_total))
        if log:
            self.log("train/kimg", float(self.seen_images) / 1000, on_step=True)

    def configure_optimizers(self):
        def adam(params, interval: int, lazy: bool):
            c = interval / (interval + 1) if lazy else 1.0  # lazy regularisation correction
            return torch.optim.Adam(params, lr=self.lr * c,
                                    betas=(self.betas[0] ** c, self.betas[1] ** c), eps=self.eps)

        return [adam(self.generator.parameters(), self.pl_interval, self.pl_active),
                adam(self.discriminator.parameters(), self.r1_interval, self.r1_active)]

    # --- validation ----------------------------------------------------------------------------

    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """G_ema on the fixed grid latents (constant noise), in [0, 1]."""
        images = self.generator_ema(self.grid_z, truncation_psi=self.truncation_psi,
                                    noise_mode="const")
        return ((images + 1) / 2).clamp(0, 1)

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        reals = self._reals(batch)
        grid = self.sample_grid()
        fakes = grid * 2 - 1
        # Cheap quality signals: D's logit gap between reals and G_ema samples, and the mean
        # squared distance of each sample to its nearest real texture of this batch.
        real_logits = self.discriminator(reals)
        fake_logits = self.discriminator(fakes)
        dists = torch.cdist(fakes.flatten(1), reals.flatten(1)).square() / fakes[0].numel()
        self.log("val/d_logit_gap", real_logits.mean() - fake_logits.mean(), sync_dist=True)
        self.log("val/nearest_real_mse", dists.min(dim=1).values.mean(), sync_dist=True)
        if batch_idx == 0 and self.global_rank == 0:
            outputs = {"generated": grid}
            self.validation_images = {"generated": grid, "phone": batch["phone"]}
            self.validation_images.update(self.collect_extra_images(batch, outputs))
