"""Built-in plugin: the neutral -> expression colour transform of Sect 3.3 (Eq. 15-16)."""

from lift_colour.gain_bias import GainBias

__all__ = ["GainBias"]
