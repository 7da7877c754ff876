"""CUT and FastCUT (Park et al., "Contrastive Learning for Unpaired Image-to-Image
Translation", ECCV 2020) as a Translator: phone (domain A) -> studio (domain B).

Defaults are the reference's (taesungp/contrastive-unpaired-translation, ``--CUT_mode CUT``):
ResNet-9 generator and 70x70 PatchGAN with anti-aliased resampling, instance norm, Xavier
init (gain 0.02), LSGAN, PatchNCE over generator layers 0,4,8,12,16 with τ = 0.07, 256
patches per layer, a 2-layer MLP head of 256 units, negatives from the same image only,
identity NCE on the studio image. FastCUT (``--CUT_mode FastCUT``) is
``nce_identity=False, flip_equivariance=True`` with an NCE weight of 10.

Loss terms (unweighted; the stage's ``loss_weights`` apply the weights):

- generator phase: ``gan`` (LSGAN, D(G(a)) -> 1), ``nce`` (PatchNCE(G(a), a), mean over the
  NCE layers of the mean over patches), ``nce_identity`` (PatchNCE(G(b), b));
- discriminator phase: ``d_real`` (D(b) -> 1), ``d_fake`` (D(G(a)) -> 0).

The reference objectives are G: λ_GAN·gan + λ_NCE·(nce + nce_identity)/2 (CUT) or
λ_GAN·gan + λ_NCE·nce (FastCUT), D: (d_real + d_fake)/2; :meth:`CUT.reference_loss_weights`
returns the matching weights (CUT: gan 1, nce 0.5, nce_identity 0.5; FastCUT: gan 1, nce 10;
both: d_real 0.5, d_fake 0.5).

One training step: :meth:`forward_step` runs G once on [a; b] (the reference's single forward
per iteration); the discriminator phase comes first (``phases()``), on the detached fakes;
then the generator phase. The NCE keys (the real images' encoder features) carry no gradient
in the reference (they are detached inside its loss), so they are taken from that same
forward pass instead of a second encoder pass: the generator has not been updated in
between, so the values are the same. With a flip (FastCUT) the forward ran on flipped images,
and the keys are encoded from the unflipped images as in the reference.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from lift.components import Phase, Translator
from lift_i2i.losses import lsgan_loss, patch_nce_loss
from lift_i2i.networks import PatchDiscriminator, PatchSampleMLP, ResnetGenerator, init_weights


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] textures -> the networks' [-1, 1]."""
    return x * 2.0 - 1.0


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] network output -> [0, 1]."""
    return (x + 1.0) * 0.5


class CUT(Translator):
    """Contrastive unpaired translation (CUT; FastCUT with ``nce_identity=False,
    flip_equivariance=True`` and NCE weight 10). See the module docstring for the terms."""

    def __init__(
        self,
        ngf: int = 64,
        ndf: int = 64,
        n_blocks: int = 9,                  # --netG resnet_9blocks
        n_layers_d: int = 3,                # --netD basic: the 70x70 PatchGAN
        norm: str = "instance",             # --normG / --normD instance
        dropout: bool = False,              # --no_dropout True
        antialias: bool = True,             # not --no_antialias
        antialias_up: bool = True,          # not --no_antialias_up
        init_type: str = "xavier",          # --init_type xavier
        init_gain: float = 0.02,            # --init_gain
        nce_layers: Sequence[int] = (0, 4, 8, 12, 16),
        nce_temperature: float = 0.07,      # --nce_T
        num_patches: int = 256,             # --num_patches
        mlp_channels: int = 256,            # --netF_nc (netF mlp_sample)
        nce_identity: bool = True,          # --nce_idt (CUT: on, FastCUT: off)
        flip_equivariance: bool = False,    # FastCUT: on
        nce_includes_all_negatives_from_minibatch: bool = False,
    ):
        super().__init__()
        self.nce_layers = sorted(int(i) for i in nce_layers)
        self.nce_temperature = nce_temperature
        self.num_patches = num_patches
        self.nce_identity = nce_identity
        self.flip_equivariance = flip_equivariance
        self.negatives_from_minibatch = nce_includes_all_negatives_from_minibatch
        # Batch-norm statistics would mix the concatenated images; instance norm does not.
        self._per_sample_norm = norm != "batch"

        self.generator = ResnetGenerator(3, 3, ngf, n_blocks, norm, dropout, antialias,
                                         antialias_up)
        self.patch_sampler = PatchSampleMLP(self.generator.feature_channels(self.nce_layers),
                                            mlp_channels)
        self.discriminator = PatchDiscriminator(3, ndf, n_layers_d, norm, antialias)
        for net in (self.generator, self.patch_sampler, self.discriminator):
            init_weights(net, init_type, init_gain)

    def phases(self) -> dict[str, Phase]:
        """D first, then G and F together (the reference's order; its two Adam optimisers
        of G and F have equal settings and step together)."""
        generator = ("gan", "nce", "nce_identity") if self.nce_identity else ("gan", "nce")
        return {"discriminator": Phase(self.discriminator_parameters, self.discriminator_losses,
                                       ("d_real", "d_fake")),
                "generator": Phase(self.generator_parameters, self.generator_losses, generator)}

    def reference_loss_weights(self) -> dict[str, float]:
        """The loss weights that reproduce the reference objective for this configuration."""
        if self.nce_identity:  # CUT: λ_NCE = 1, (nce + nce_identity) / 2
            weights = {"gan": 1.0, "nce": 0.5, "nce_identity": 0.5}
        else:  # FastCUT: λ_NCE = 10
            weights = {"gan": 1.0, "nce": 10.0}
        return {**weights, "d_real": 0.5, "d_fake": 0.5}

    # --- training ----------------------------------------------------------------------------

    def forward_step(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        real_a, real_b = to_signed(batch["phone"]), to_signed(batch["studio"])
        real = torch.cat([real_a, real_b]) if self.nce_identity else real_a
        flipped = self.flip_equivariance and self.training and bool(torch.rand(()) < 0.5)
        keys = None
        if flipped or not self._per_sample_norm:  # keys: encoded in the G phase
            fake = self.generator(real.flip(3) if flipped else real)
        else:
            fake, feats = self.generator(real, self.nce_layers)
            keys = [f.detach() for f in feats]
        n = real_a.shape[0]
        return {"real_a": real_a, "real_b": real_b, "real": real, "fake": fake,
                "fake_b": fake[:n], "idt_b": fake[n:] if self.nce_identity else None,
                "flipped": flipped, "keys": keys}

    def discriminator_losses(self, batch: Mapping[str, Any], outputs: Mapping[str, Any],
                             step: int = 0) -> dict[str, torch.Tensor]:
        fake_b, real_b = outputs["fake_b"].detach(), outputs["real_b"]
        if self._per_sample_norm:  # one D pass over [fake; real]
            pred = self.discriminator(torch.cat([fake_b, real_b]))
            pred_fake, pred_real = pred[: fake_b.shape[0]], pred[fake_b.shape[0]:]
        else:
            pred_fake, pred_real = self.discriminator(fake_b), self.discriminator(real_b)
        return {"d_fake": lsgan_loss(pred_fake, False), "d_real": lsgan_loss(pred_real, True)}

    def generator_losses(self, batch: Mapping[str, Any], outputs: Mapping[str, Any],
                         step: int = 0) -> dict[str, torch.Tensor]:
        terms = {"gan": lsgan_loss(self.discriminator(outputs["fake_b"]), True)}
        n = outputs["real_a"].shape[0]
        queries = self._encode(outputs["fake"], n)
        if outputs["flipped"]:  # compare in the unflipped frame (FastCUT's equivariance)
            queries = [q.flip(3) for q in queries]
        keys = outputs["keys"]
        if keys is None:
            with torch.no_grad():
                keys = self._encode(outputs["real"], n)
        terms["nce"] = self.nce_loss([q[:n] for q in queries], [k[:n] for k in keys])
        if self.nce_identity:
            terms["nce_identity"] = self.nce_loss([q[n:] for q in queries],
                                                  [k[n:] for k in keys])
        return terms

    def _encode(self, images: torch.Tensor, n: int) -> list[torch.Tensor]:
        """NCE-layer features of [domain A images; domain B images]: one encoder pass with
        instance norm; one per domain with batch norm (as the reference's separate calls)."""
        if self._per_sample_norm:
            return self.generator.encode(images, self.nce_layers)
        parts = [images[:n]] + ([images[n:]] if images.shape[0] > n else [])
        per_part = [self.generator.encode(p, self.nce_layers) for p in parts]
        return [torch.cat(fs) for fs in zip(*per_part)]

    def nce_loss(self, queries: Sequence[torch.Tensor], keys: Sequence[torch.Tensor]
                 ) -> torch.Tensor:
        """Mean over the NCE layers of the mean PatchNCE loss, locations shared by q and k."""
        with torch.no_grad():  # the keys are detached in the loss: no graph through F needed
            key_emb, ids = self.patch_sampler(keys, self.num_patches)
        query_emb, _ = self.patch_sampler(queries, self.num_patches, ids)
        batch_size = queries[0].shape[0]
        total = sum(
            patch_nce_loss(q, k, batch_size, self.nce_temperature,
                           self.negatives_from_minibatch).mean()
            for q, k in zip(query_emb, key_emb)
        )
        return total / len(self.nce_layers)

    def generator_parameters(self) -> Iterable[nn.Parameter]:
        # G and F: the reference's two Adam optimisers with equal settings step together.
        return [*self.generator.parameters(), *self.patch_sampler.parameters()]

    def discriminator_parameters(self) -> Iterable[nn.Parameter]:
        return list(self.discriminator.parameters())

    # --- inference ---------------------------------------------------------------------------

    def translate(self, phone: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """G(phone) in [0, 1]. The mask is not used (CUT translates the whole image)."""
        return to_unit(self.generator(to_signed(phone)))

    def visuals(self, batch: Mapping[str, Any], outputs: Mapping[str, Any]
                ) -> dict[str, torch.Tensor]:
        images = {"fake_studio": to_unit(outputs["fake_b"].detach())}
        if outputs.get("idt_b") is not None:
            images["identity_studio"] = to_unit(outputs["idt_b"].detach())
        if outputs.get("flipped"):  # the fakes were made from flipped inputs
            images = {k: v.flip(3) for k, v in images.items()}
        return images
