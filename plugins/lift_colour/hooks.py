"""Registration of the built-in colour transforms."""

from lift import hookimpl
from lift_colour.gain_bias import GainBias


@hookimpl
def lift_register_colour_transforms():
    return [GainBias]
