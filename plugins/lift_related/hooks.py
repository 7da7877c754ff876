"""Registration of the related systems' translators and upsampler."""

from lift import hookimpl


@hookimpl
def lift_register_translators():
    from lift_related.completion import MirroredCompletion, SymmetricCompletion

    return [MirroredCompletion, SymmetricCompletion]


@hookimpl
def lift_register_upsamplers():
    from lift_related.srresnet import SRResNetUpsampler

    return [SRResNetUpsampler]
