"""Registration of the CUT / FastCUT and CycleGAN translators."""

from lift import hookimpl


@hookimpl
def lift_register_translators():
    from lift_i2i.cut import CUT
    from lift_i2i.cyclegan import CycleGAN

    return [CUT, CycleGAN]
