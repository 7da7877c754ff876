"""InversionSettings: everything Eq. 1's optimisation needs, in one object.

The inversion stage (which writes the latent bank S_W+) and every test-time inversion (e.g.
StyleGAN-W+ inverting an unseen phone texture before G_studio renders it) use the same
settings object, so the two can never drift apart; the bank's manifest records the settings'
spec, and a translator that is given no settings of its own rebuilds them from there.
"""

from __future__ import annotations

from lift.components import PerceptualDistance, StyleGenerator
from lift.inversion.codes import LatentCode
from lift.inversion.inverter import BatchedInverter
from lift.inversion.objective import InversionObjective
from lift.inversion.schedule import ProjectorSchedule
from lift.inversion.stopping import PlateauStop
from lift.spec import Recordable


class InversionSettings(Recordable):
    """The objective (Eq. 1), the code space, the schedule and the optimiser of an inversion.

    Args:
        distance: the LPIPS-type term of Eq. 1.
        code: ``WPlusCode`` (Eq. 1) or ``WCode`` (the W baseline).
        schedule: steps, learning-rate ramps, latent noise.
        mse_weight, perceptual_weight: Eq. 1's weights (the paper: 1 and 1).
        use_mask: fit the visible texels only (phone textures have holes).
        batch_size: textures optimised together (continuous batching).
        early_stop: per-texture plateau stop; None: every texture runs all steps.
        adam_betas, adam_eps: Adam (reference projectors: (0.9, 0.999), 1e-8).
        w_stats_samples: z draws for w_avg (the initial code) and w_std (the noise unit).
        seed: latent-noise seed, mixed with each texture's stem.
    """

    def __init__(
        self,
        distance: PerceptualDistance,
        code: LatentCode,
        schedule: ProjectorSchedule,
        mse_weight: float,
        perceptual_weight: float,
        use_mask: bool,
        batch_size: int,
        early_stop: PlateauStop | None,
        adam_betas: tuple[float, float],
        adam_eps: float,
        w_stats_samples: int,
        seed: int,
    ):
        if batch_size < 1:
            raise ValueError(f"inversion batch_size must be >= 1, got {batch_size}")
        self.distance = distance
        self.code = code
        self.schedule = schedule
        self.mse_weight = mse_weight
        self.perceptual_weight = perceptual_weight
        self.use_mask = use_mask
        self.batch_size = batch_size
        self.early_stop = early_stop
        self.adam_betas = tuple(adam_betas)
        self.adam_eps = adam_eps
        self.w_stats_samples = w_stats_samples
        self.seed = seed

    def objective(self) -> InversionObjective:
        return InversionObjective(self.distance, self.mse_weight, self.perceptual_weight,
                                  self.use_mask)

    def inverter(self, generator: StyleGenerator) -> BatchedInverter:
        """A :class:`BatchedInverter` of ``generator`` (frozen) with these settings."""
        return BatchedInverter(
            generator, self.objective(), self.code, self.schedule, self.batch_size,
            early_stop=self.early_stop, adam_betas=self.adam_betas, adam_eps=self.adam_eps,
            w_stats_samples=self.w_stats_samples, seed=self.seed)
