"""Built-in plugin: ResShift residual-shifting diffusion upsampler (Sect 3.2, Eq. 9-14)."""
