"""Abstract base classes of the swappable components (one file each).

A plugin adds a component by subclassing one of these and returning the class from the
matching ``lift_register_*`` hook. The registry checks the subclass relation at start-up.
"""

from lift.components.colour_transform import ColourTransform
from lift.components.generator import ImageDiscriminator, StyleGenerator
from lift.components.gradient_operator import GradientOperator
from lift.components.identity_encoder import IdentityEncoder
from lift.components.latent_sampler import LatentSampler
from lift.components.metric import Metric
from lift.components.perceptual_distance import PerceptualDistance
from lift.components.translator import Phase, Translator
from lift.components.upsampler import Upsampler

__all__ = [
    "ColourTransform",
    "GradientOperator",
    "IdentityEncoder",
    "ImageDiscriminator",
    "LatentSampler",
    "Metric",
    "PerceptualDistance",
    "Phase",
    "StyleGenerator",
    "Translator",
    "Upsampler",
]
