"""The example plugin's hook implementations."""

from lift import hookimpl
from lift_example_translator.translator import AffineColourTranslator


@hookimpl
def lift_register_translators():
    return [AffineColourTranslator]
