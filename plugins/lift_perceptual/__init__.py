"""Built-in perceptual distances (Eq. 1, 5, 6 and the LPIPS/DISTS columns of Tables 1-4).

- ``STLPIPS``: shift-tolerant LPIPS with the pretrained weights shipped by ``stlpips-pytorch``;
  the offline default.
- ``LPIPS``: the paper's LPIPS (VGG, or AlexNet) through the ``lpips`` package; needs
  torchvision's ImageNet backbone checkpoint on disk.
- ``DISTS``: piq's DISTS; needs piq's DISTS weights and torchvision's VGG16 on disk.
"""
