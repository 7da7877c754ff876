"""lift: studio-quality face textures from monocular phone captures (Athar et al. 2024)."""

from lift.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["hookimpl", "__version__"]
