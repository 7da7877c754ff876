"""Registration of the ResShift upsampler."""

from lift import hookimpl
from lift_resshift.upsampler import ResShift


@hookimpl
def lift_register_upsamplers():
    return [ResShift]
