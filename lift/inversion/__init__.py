"""GAN inversion into W+ (Sect 3.1, Eq. 1), in small parts:

- ``codes``: how a texture's free parameters become a W+ code (``WPlusCode``, ``WCode``) —
  the module boundary between W and W+ inversion;
- ``schedule``: the reference projectors' lr ramp and latent-noise schedule;
- ``objective``: the per-texture loss of Eq. 1 (MSE + perceptual, optional visibility mask);
- ``stopping``: per-texture early stopping on a loss plateau;
- ``inverter``: the batched optimiser (continuous batching of independent textures);
- ``encoder``: encoder-initialised inversion (a W+ encoder trained once on G_phone's samples,
  then a short refinement of Eq. 1 with an L2 anchor; ``EncoderInversionSettings``);
- ``report``: reconstruction PSNR / perceptual distance per texture, W vs W+.

The Lightning stage that runs it under ``lift predict`` is ``lift.stages.inversion``.
"""
