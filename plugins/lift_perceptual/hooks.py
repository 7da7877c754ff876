"""Registration of the built-in perceptual distances, and of the discriminator on their frozen
feature space (``ProjectedDiscriminator``, Projected GANs).

No ``lift_resolve_weights`` hook here: STLPIPS finds the file shipped by stlpips-pytorch
itself, and LPIPS/DISTS files are found by the core search ($LIFT_WEIGHTS_DIR, the caches).
"""

from lift import hookimpl
from lift_perceptual.dists import DISTS
from lift_perceptual.lpips_distance import LPIPS
from lift_perceptual.stlpips import STLPIPS


@hookimpl
def lift_register_perceptual_distances():
    return [STLPIPS, LPIPS, DISTS]


@hookimpl
def lift_register_discriminators():
    from lift_perceptual.projected import ProjectedDiscriminator

    return [ProjectedDiscriminator]
