"""Registration hooks of the StyleGAN2 plugin.

The networks are not a component kind (stage configs name them by ``class_path``); the
latent samplers (``lift_stylegan2.samplers``) are registered here.
"""

from lift import hookimpl  # noqa: F401  (hook implementations are added below)


@hookimpl
def lift_register_latent_samplers():
    from lift_stylegan2.samplers import WPlusBankSampler, WSampler, ZPlusSampler, ZSampler

    return [ZSampler, WSampler, ZPlusSampler, WPlusBankSampler]


@hookimpl
def lift_register_translators():
    from lift_stylegan2.finetune import AgileGANZPlus, StyleGANWPlus

    return [StyleGANWPlus, AgileGANZPlus]
