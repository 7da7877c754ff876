"""StyleGAN2 finetuning translators: the paper's StyleGAN-W+ (Sect 3.1, Eq. 3-8) and AgileGAN-Z+.

Both start from the prior stage's checkpoint: G_studio <- G_phone and D_studio <- D_phone; a
frozen copy of G_phone stays beside G_studio (the target of Eq. 4 and 5). Only the synthesis
network above ``freeze_resolution`` is trained (the paper freezes <= 8x8; the mapping network
is never trained). Latents come from a :class:`~lift.components.LatentSampler` plugin, so W+
bank vs Z (Table 4) is a config swap.

Loss terms (unweighted; the stage's ``loss_weights`` are Eq. 8's weights):

=================  ===========  =====================================================  ======
term               phase        definition                                             paper
=================  ===========  =====================================================  ======
``adv``            both         hinge: G -E[D(G_s(w))]; D E[relu(1-D(x))]+E[relu(1+D(G_s(w)))]  Eq. 3
``r1``             D            (1/2) E||grad_x D(x)||^2 on studio reals (weight: gamma)  Eq. 7
``lpips_prior``    G            d(G_s(w), G_p(w)), d the configured perceptual distance  Eq. 5
``faceid``         G            ||F(G_s(w)) - F(G_p(w))||^2, F the identity encoder       Eq. 4
``paired``         G            d(G_s(W+_i), I_i^studio) on the paired subset           Eq. 6
=================  ===========  =====================================================  ======

AgileGAN-Z+ adds its encoder's terms (``enc_mse``, ``enc_lpips``, ``enc_kl``) and has no
``faceid`` / ``paired`` terms (the paper's point of comparison).
"""

from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from lift.checkpoints import load_prior
from lift.components import (
    IdentityEncoder,
    ImageDiscriminator,
    LatentSampler,
    PerceptualDistance,
    Phase,
    StyleGenerator,
    Translator,
)
from lift.inversion.inverter import BatchedInverter, optimising
from lift.inversion.settings import InversionSettings
from lift.latent_bank import LatentBank, LatentBankError, check_bank_generator
from lift.spec import SpecError, build
from lift_stylegan2.encoder import kl_to_standard_normal, zplus_to_wplus
from lift.losses.gan import d_hinge_loss, d_r1_penalty, g_hinge_loss


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Generator output ([-1, 1]) -> texture ([0, 1]), without clamping (keeps gradients)."""
    return (images + 1) / 2


class StyleGANFinetune(Translator):
    """Shared part of the StyleGAN2 finetuning translators (not registered by itself).

    Args:
        checkpoint: the prior stage's checkpoint: G_phone / D_phone, architectures and
            weights (None: ``generator`` / ``discriminator`` as given, e.g. tests).
        sampler: the latents G_studio is trained on (bound to G_phone's mapping).
        distance: the perceptual distance of Eq. 5 (and Eq. 6).
        freeze_resolution: synthesis blocks at or below this resolution stay frozen
            (the paper: 8; 0 trains every block).
        use_ema: initialise from G_phone's EMA weights (True) or its raw weights.
        r1_interval: compute R1 every this many D steps, scaled by it (lazy regularisation,
            1: every step).
        augment: differentiable augmentation of D's inputs (e.g. DiffAugment; None: off).
        source_cache_mb: memory for G_phone's images (and their identity features) of bank
            codes: G_phone is frozen, so each code's image is rendered once, not every step
            (exact; only samplers with ``sample_indexed`` indices, i.e. banks; 0: off).
        reuse_fakes: render G_studio(w) once per step for both phases (exact: D's phase runs
            first, so both see the same G_studio; False renders it in each phase, the same
            values at twice the cost, for tests and benchmarks).
        generator, discriminator: G / D built in memory, only when ``checkpoint`` is None.
    """

    generator_terms: tuple[str, ...] = ("adv", "lpips_prior")

    def __init__(
        self,
        checkpoint: str | None,
        sampler: LatentSampler,
        distance: PerceptualDistance,
        freeze_resolution: int = 8,
        use_ema: bool = True,
        r1_interval: int = 1,
        augment: nn.Module | None = None,
        source_cache_mb: float = 256.0,
        reuse_fakes: bool = True,
        generator: StyleGenerator | None = None,
        discriminator: ImageDiscriminator | None = None,
    ):
        super().__init__()
        if r1_interval < 1:
            raise ValueError(f"r1_interval must be >= 1, got {r1_interval}")
        if checkpoint is not None:
            if generator is not None or discriminator is not None:
                raise ValueError(f"{type(self).__name__}: the networks come from checkpoint "
                                 f"{checkpoint}; do not configure generator / discriminator too")
            generator, discriminator = load_prior(checkpoint, ema=use_ema)
        elif generator is None or discriminator is None:
            raise ValueError(f"{type(self).__name__}: give checkpoint (the prior stage's "
                             "output) or both generator and discriminator")
        self.checkpoint = checkpoint
        self.generator = generator                      # G_studio (trained)
        self.source_generator = copy.deepcopy(generator).requires_grad_(False).eval()  # G_phone
        self.discriminator = discriminator              # D_studio, from D_phone
        self.sampler = sampler
        try:
            self.sampler.bind(self.source_generator)
        except LatentBankError as err:
            raise LatentBankError(f"{err}; this translator's G_phone: "
                                  f"{checkpoint or 'built in memory'}") from None
        self.distance = distance.requires_grad_(False)
        self.augment = augment
        self.freeze_resolution = freeze_resolution
        self.r1_interval = r1_interval
        self.source_cache_mb = float(source_cache_mb)
        self.reuse_fakes = bool(reuse_fakes)
        self._source_cache: dict[int, dict[str, torch.Tensor]] = {}  # bank index -> outputs
        self._source_cache_bytes = 0
        for p in self.generator.mapping_parameters():
            p.requires_grad_(False)
        for p in self.generator.parameters_up_to(freeze_resolution):
            p.requires_grad_(False)

    # --- helpers -------------------------------------------------------------------------

    @property
    def resolution(self) -> int:
        return int(self.generator.resolution)

    def _check_size(self, images: torch.Tensor, key: str) -> torch.Tensor:
        if images.shape[-1] != self.resolution or images.shape[-2] != self.resolution:
            raise ValueError(f"batch[{key!r}] is {tuple(images.shape[-2:])} but the generator "
                             f"makes {self.resolution}x{self.resolution}; set the data module's "
                             f"resolution to {self.resolution}")
        return images

    def _d(self, images: torch.Tensor) -> torch.Tensor:
        return self.discriminator(self.augment(images) if self.augment is not None else images)

    def _perceptual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.distance(x, y).mean()

    # --- Translator ----------------------------------------------------------------------

    def phases(self) -> dict[str, Phase]:
        """D_studio first, then G_studio; R1 every ``r1_interval`` D steps.

        NVlabs alternates G then D, each rendering its own fakes. With D first, both phases
        see the same G_studio, so the one rendering of ``forward_step`` serves both exactly
        (the G phase scores it with the updated D, as a rendering after the D step would be).
        """
        return {"discriminator": Phase(self.discriminator_parameters, self.discriminator_losses,
                                       ("adv", "r1"), lazy_terms=("r1",)),
                "generator": Phase(self.generator_parameters, self.generator_losses,
                                   self.generator_terms)}

    def rebuilt_modules(self) -> tuple[str, ...]:
        # G_phone comes from the prior checkpoint; the distance is pretrained and frozen.
        return ("source_generator", "distance")

    def generator_parameters(self) -> Iterable[nn.Parameter]:
        return [p for p in self.generator.parameters() if p.requires_grad]

    def discriminator_parameters(self) -> Iterable[nn.Parameter]:
        return list(self.discriminator.parameters())

    def forward_step(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        num = batch["studio"].shape[0]
        ws, index = self.sampler.sample_indexed(num)
        ws = ws.detach()
        outputs: dict[str, Any] = {"ws": ws, **self.source_outputs(ws, index)}
        codes = {"fakes": ws, **self.extra_codes(batch, outputs)}
        outputs.update({f"{key}_ws": c for key, c in codes.items() if key != "fakes"})
        if self.reuse_fakes and torch.is_grad_enabled():
            # One G_studio pass over every code of the step (G has no batch coupling: the
            # same values as separate passes); D's phase reads it detached, G's with its graph.
            sizes = [c.shape[0] for c in codes.values()]
            images = self.generator.synthesize(torch.cat(list(codes.values())),
                                               noise_mode="const")
            outputs.update(zip(codes, images.split(sizes)))
        return outputs

    # --- G_phone's side of the losses: frozen, so cached per bank code ------------------------

    def source_features(self, source: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the losses need of G_phone(w) besides the image (subclasses: identity)."""
        return {}

    def _render_source(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            source = self.source_generator.synthesize(ws, noise_mode="const")
            return {"source": source, **self.source_features(source)}

    def source_outputs(self, ws: torch.Tensor, index: torch.Tensor | None
                       ) -> dict[str, torch.Tensor]:
        """G_phone(ws) and its features; from the cache for bank codes seen before."""
        if index is None or self.source_cache_mb <= 0:
            return self._render_source(ws)
        keys = [int(k) for k in index.tolist()]
        todo = sorted({k for k in keys if k not in self._source_cache})
        items = {k: self._source_cache[k] for k in keys if k in self._source_cache}
        if todo:
            fresh = self._render_source(ws[[keys.index(k) for k in todo]])
            budget = self.source_cache_mb * 2 ** 20
            for j, k in enumerate(todo):
                items[k] = {name: value[j].detach() for name, value in fresh.items()}
                size = sum(v.numel() * v.element_size() for v in items[k].values())
                if self._source_cache_bytes + size <= budget:  # else rendered again next time
                    self._source_cache[k] = items[k]
                    self._source_cache_bytes += size
        return {name: torch.stack([items[k][name] for k in keys]).to(ws.device)
                for name in items[keys[0]]}

    def extra_codes(self, batch, outputs) -> dict[str, torch.Tensor]:
        """Further codes G_studio renders this step, by output name (``paired``: Eq. 6)."""
        return {}

    def _fakes(self, outputs, key: str = "fakes") -> torch.Tensor:
        fakes = outputs.get(key)
        if fakes is None:
            fakes = self.generator.synthesize(outputs["ws" if key == "fakes" else f"{key}_ws"],
                                              noise_mode="const")
        return fakes

    def generator_losses(self, batch, outputs, step: int = 0) -> dict[str, torch.Tensor]:
        fakes = self._fakes(outputs)
        terms = {
            "adv": g_hinge_loss(self._d(fakes)),                                      # Eq. 3
            "lpips_prior": self._perceptual(to_unit(fakes), to_unit(outputs["source"])),  # Eq. 5
        }
        terms.update(self.extra_generator_terms(batch, outputs, fakes))
        return terms

    def extra_generator_terms(self, batch, outputs, fakes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Subclasses' further G-phase terms (``fakes`` = G_studio(ws), in [-1, 1])."""
        return {}

    def discriminator_losses(self, batch, outputs, step: int = 0) -> dict[str, torch.Tensor]:
        reals = self._check_size(batch["studio"], "studio") * 2 - 1
        with torch.no_grad():
            fakes = self._fakes(outputs).detach()
        terms = {"adv": d_hinge_loss(self._d(reals), self._d(fakes))}             # Eq. 3
        if step % self.r1_interval == 0:
            reals = reals.detach().requires_grad_(True)
            # Eq. 7 without gamma (gamma is the configured weight), times the lazy interval.
            terms["r1"] = d_r1_penalty(self._d(reals), reals, gamma=1.0) * self.r1_interval
        return terms

    def synthesize(self, ws: torch.Tensor) -> torch.Tensor:
        """G_studio(ws) as textures in [0, 1]."""
        return to_unit(self.generator.synthesize(ws, noise_mode="const")).clamp(0, 1)


class StyleGANWPlus(StyleGANFinetune):
    """The paper's translator: G_studio finetuned on W+ codes of inverted phone textures.

    Args (besides :class:`StyleGANFinetune`'s):
        identity_encoder: the F of Eq. 4 (None: no ``faceid`` term).
        paired_bank: latent bank holding the paired textures' W+ codes (Eq. 6; the paired
            stems are phone textures too, so usually the sampler's bank); None: no ``paired``.
        eval_banks: latent banks looked up first at test time (stems found there are not
            re-inverted); missing stems are inverted with ``inversion``.
        inversion: the settings of test-time inversion (Sect 3.1: I* = G_studio(W+_{I_phone})
            with W+ from Eq. 1 on G_phone); None: the settings recorded in the manifest of
            the first of ``paired_bank``, ``eval_banks``, the sampler's bank that has them,
            i.e. exactly how the training codes were inverted.
    """

    generator_terms = ("adv", "lpips_prior", "faceid", "paired")

    def __init__(
        self,
        checkpoint: str | None,
        sampler: LatentSampler,
        distance: PerceptualDistance,
        identity_encoder: IdentityEncoder | None = None,
        paired_bank: str | None = None,
        eval_banks: list[str] | None = None,
        inversion: InversionSettings | None = None,
        freeze_resolution: int = 8,
        use_ema: bool = True,
        r1_interval: int = 1,
        augment: nn.Module | None = None,
        source_cache_mb: float = 256.0,
        reuse_fakes: bool = True,
        generator: StyleGenerator | None = None,
        discriminator: ImageDiscriminator | None = None,
    ):
        super().__init__(checkpoint, sampler, distance, freeze_resolution=freeze_resolution,
                         use_ema=use_ema, r1_interval=r1_interval, augment=augment,
                         source_cache_mb=source_cache_mb, reuse_fakes=reuse_fakes,
                         generator=generator, discriminator=discriminator)
        self.identity_encoder = (identity_encoder.requires_grad_(False).eval()
                                 if identity_encoder is not None else None)
        self.paired_bank = paired_bank
        self.eval_banks = list(eval_banks or [])
        self.inversion = inversion
        self._banks: dict[str, LatentBank] = {}
        self._inverter: list[BatchedInverter] = []  # a list: not a submodule
        for root in [paired_bank, *self.eval_banks]:
            if root is not None:
                self._bank(root)  # fail at start-up, not at the first paired batch

    def rebuilt_modules(self) -> tuple[str, ...]:
        return (*super().rebuilt_modules(), "identity_encoder")  # pretrained, frozen

    def _bank(self, root: str) -> LatentBank:
        if root not in self._banks:
            bank = LatentBank.open(root)
            check_bank_generator(bank, self.source_generator,
                                 self.checkpoint or "a generator built in memory")
            self._banks[root] = bank
        return self._banks[root]

    def inversion_settings(self) -> InversionSettings:
        """``inversion`` if configured, else the settings recorded with the training codes."""
        if self.inversion is not None:
            return self.inversion
        roots = [self.paired_bank, *self.eval_banks, getattr(self.sampler, "bank", None)]
        for root in [r for r in roots if r is not None]:
            spec = LatentBank.open(root).manifest.get("config", {}).get("settings")
            if spec is not None:
                try:
                    return build(spec, where=f"latent bank {root}: settings")
                except SpecError as err:
                    raise ValueError(str(err)) from err
        raise ValueError(f"{type(self).__name__}: a texture is in no eval bank, no inversion "
                         f"settings are configured and none of the banks {roots} records "
                         "them; set translator.init_args.inversion")

    def _paired_codes(self, stems: list[str]) -> torch.Tensor:
        bank = self._bank(self.paired_bank)
        present = set(bank.stems)
        missing = [s for s in stems if s not in present]
        if missing:
            raise KeyError(f"paired stems {missing[:5]} are not in paired_bank {self.paired_bank}; "
                           "invert the paired split's phone textures into it (lift predict "
                           "with the invert config) or set paired_bank: null and drop the "
                           "'paired' loss weight")
        return torch.stack([bank.get(s) for s in stems])

    def extra_codes(self, batch, outputs) -> dict[str, torch.Tensor]:
        if self.paired_bank is None or "paired_stem" not in batch:
            return {}
        codes = self._paired_codes(list(batch["paired_stem"]))
        return {"paired": codes.to(outputs["ws"].device)}

    def source_features(self, source: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.identity_encoder is None:
            return {}
        with torch.no_grad():  # F(G_phone(w)), Eq. 4's target
            return {"source_identity": self.identity_encoder(to_unit(source).clamp(0, 1))}

    def extra_generator_terms(self, batch, outputs, fakes) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        if self.identity_encoder is not None:                                 # Eq. 4
            target = outputs.get("source_identity")
            if target is None:
                target = self.source_features(outputs["source"])["source_identity"]
            emb = self.identity_encoder(to_unit(fakes).clamp(0, 1))
            terms["faceid"] = (emb - target).square().sum(dim=1).mean()
        if "paired_ws" in outputs:                                            # Eq. 6
            studio = self._check_size(batch["paired_studio"], "paired_studio")
            terms["paired"] = self._perceptual(to_unit(self._fakes(outputs, "paired")), studio)
        return terms

    # --- test time: invert with G_phone, then G_studio -------------------------------------

    def inverter(self) -> BatchedInverter:
        if not self._inverter:
            settings = self.inversion_settings()
            settings.distance.to(self.source_generator.w_avg.device)
            self._inverter.append(settings.inverter(self.source_generator))
        return self._inverter[0]

    def invert(self, phone: torch.Tensor, mask: torch.Tensor | None,
               stems: list[str] | None = None) -> torch.Tensor:
        """W+ codes of phone textures by Eq. 1 on G_phone (``[B, num_ws, w_dim]``)."""
        self._check_size(phone, "phone")
        stems = stems or [f"item{i}" for i in range(phone.shape[0])]
        with optimising():
            results = self.inverter().invert(stems, phone, mask)
        return torch.stack([r.w_plus for r in results]).to(phone.device)

    def codes_for(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Codes of an evaluation batch: from ``eval_banks`` where present, else inverted."""
        phone, mask = batch["phone"], batch.get("mask")
        stems = list(batch.get("stem") or [f"item{i}" for i in range(phone.shape[0])])
        codes: list[torch.Tensor | None] = [None] * len(stems)
        for root in self.eval_banks:
            bank = self._bank(root)
            present = set(bank.stems)
            for i, stem in enumerate(stems):
                if codes[i] is None and stem in present:
                    codes[i] = bank.get(stem).to(phone.device)
        todo = [i for i, c in enumerate(codes) if c is None]
        if todo:
            inverted = self.invert(phone[todo], None if mask is None else mask[todo],
                                   [stems[i] for i in todo])
            for i, code in zip(todo, inverted):
                codes[i] = code
        return torch.stack(codes)

    def translate(self, phone: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.synthesize(self.invert(phone, mask))

    def translate_batch(self, batch: Mapping[str, Any]) -> torch.Tensor:
        with torch.no_grad():
            return self.synthesize(self.codes_for(batch))

    def visuals(self, batch, outputs) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"G_phone(w)": to_unit(outputs["source"]).clamp(0, 1),
                    "G_studio(w)": self.synthesize(outputs["ws"])}


class AgileGANZPlus(StyleGANFinetune):
    """AgileGAN baseline (Song et al. 2021) as the paper compares it (Sect 4.2).

    The G_phone prior is transferred to studio with hinge + R1 + LPIPS to the source
    generator (the shared terms), latents drawn in Z+ (use ``ZPlusSampler``), and a variational
    encoder into Z+ (:class:`~lift_stylegan2.encoder.ZPlusEncoder`) trained on phone textures
    through the frozen G_phone (terms ``enc_mse``, ``enc_lpips``, ``enc_kl``; G_phone is frozen,
    so training it alongside is the same as AgileGAN's separate encoder training). No identity
    loss and no paired term. Test time: I* = G_studio(mapping(mu_E(I_phone))).

    Args (besides :class:`StyleGANFinetune`'s):
        encoder: the Z+ encoder.
        encoder_use_mask: fit only the visible texels of the phone texture.
    """

    def __init__(
        self,
        checkpoint: str | None,
        sampler: LatentSampler,
        distance: PerceptualDistance,
        encoder: nn.Module,
        encoder_use_mask: bool = True,
        freeze_resolution: int = 8,
        use_ema: bool = True,
        r1_interval: int = 1,
        augment: nn.Module | None = None,
        source_cache_mb: float = 256.0,
        reuse_fakes: bool = True,
        generator: StyleGenerator | None = None,
        discriminator: ImageDiscriminator | None = None,
    ):
        super().__init__(checkpoint, sampler, distance, freeze_resolution=freeze_resolution,
                         use_ema=use_ema, r1_interval=r1_interval, augment=augment,
                         source_cache_mb=source_cache_mb, reuse_fakes=reuse_fakes,
                         generator=generator, discriminator=discriminator)
        if encoder.num_ws != self.generator.num_ws:
            raise ValueError(f"encoder predicts {encoder.num_ws} rows, the generator has "
                             f"{self.generator.num_ws}")
        self.encoder = encoder
        self.encoder_use_mask = encoder_use_mask

    def phases(self) -> dict[str, Phase]:
        """The shared G / D phases, then the Z+ encoder's own phase (its own optimiser,
        ``model.optimizers.encoder``): it learns through the frozen G_phone, as AgileGAN's
        separately trained encoder."""
        return {**super().phases(),
                "encoder": Phase(self.encoder.parameters, self.encoder_losses,
                                 ("enc_mse", "enc_lpips", "enc_kl"))}

    def encode(self, phone: torch.Tensor, sample: bool) -> tuple[torch.Tensor, ...]:
        mu, logvar = self.encoder(phone)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        g = self.source_generator
        return zplus_to_wplus(g.map, z, g.num_ws, g.w_dim), mu, logvar

    def encoder_losses(self, batch, outputs, step: int = 0) -> dict[str, torch.Tensor]:
        phone = self._check_size(batch["phone"], "phone")
        ws, mu, logvar = self.encode(phone, sample=True)
        recon = to_unit(self.source_generator.synthesize(ws, noise_mode="const"))
        mask = batch.get("mask") if self.encoder_use_mask else None
        if mask is not None:
            visible = mask.flatten(1).sum(1).clamp(min=1) * 3
            mse = ((recon - phone).square() * mask).flatten(1).sum(1).div(visible).mean()
            lpips = self._perceptual(recon * mask, phone * mask)
        else:
            mse, lpips = (recon - phone).square().mean(), self._perceptual(recon, phone)
        return {"enc_mse": mse, "enc_lpips": lpips, "enc_kl": kl_to_standard_normal(mu, logvar)}

    def translate(self, phone: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            ws, _, _ = self.encode(self._check_size(phone, "phone"), sample=False)
            return self.synthesize(ws)
