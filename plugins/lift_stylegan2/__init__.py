"""Built-in StyleGAN2 plugin: networks (config F), losses, DiffAugment, latent samplers."""
