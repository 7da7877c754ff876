"""Related systems of the literature as lift plugins, evaluated beside the paper's method.

- :class:`~lift_related.completion.MirroredCompletion` (MoSAR, Dib et al. 2024, seed 003):
  a U-Net fed the incomplete texture, its mask and their mirror across the UV symmetry axis,
  completing holes and normalising the light, trained on paired subjects and on studio
  textures degraded by :class:`~lift_related.augmentation.RelightingAugmentation`.
- :class:`~lift_related.completion.SymmetricCompletion` (Yamaguchi et al. 2018, seed 004):
  multi-resolution completion whose encoder features are concatenated with their mirror.
- :class:`~lift_related.srresnet.SRResNetUpsampler` (seed 004's texture super-resolution):
  a non-diffusion residual CNN ``Upsampler``.

See docs/related_mosar.md and docs/related_yamaguchi.md.
"""
