"""Registration of the built-in gradient operators."""

from lift import hookimpl
from lift_gradients.operators import HighPass, Laplacian, SobelMagnitude


@hookimpl
def lift_register_gradient_operators():
    return [HighPass, Laplacian, SobelMagnitude]
