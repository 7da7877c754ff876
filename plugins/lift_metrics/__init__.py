"""Built-in evaluation metrics of Tables 1-4: PSNR, SSIM and perceptual-distance metrics.

Each is a ``lift.components.Metric`` (a torchmetrics Metric) that averages a per-sample value
over every sample it has seen (on every DDP rank); ``name`` is its report column.
"""
