"""Registration hooks of the StyleGAN2 plugin: its networks (the core's StyleGenerator /
ImageDiscriminator contract), latent samplers and finetuning translators."""

from lift import hookimpl  # noqa: F401  (hook implementations are added below)


@hookimpl
def lift_register_latent_samplers():
    from lift_stylegan2.samplers import WPlusBankSampler, WSampler, ZPlusSampler, ZSampler

    return [ZSampler, WSampler, ZPlusSampler, WPlusBankSampler]


@hookimpl
def lift_register_translators():
    from lift_stylegan2.finetune import AgileGANZPlus, StyleGANWPlus

    return [StyleGANWPlus, AgileGANZPlus]


@hookimpl
def lift_register_generators():
    from lift_stylegan2.networks import Generator

    return [Generator]


@hookimpl
def lift_register_discriminators():
    from lift_stylegan2.networks import Discriminator

    return [Discriminator]
