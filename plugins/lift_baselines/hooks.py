"""Registration hooks of the trivial-baselines plugin."""

from lift import hookimpl


@hookimpl
def lift_register_translators():
    from lift_baselines.baselines import MeanStudioFill, PhoneTexture

    return [PhoneTexture, MeanStudioFill]
