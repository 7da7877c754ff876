"""Registration of the built-in metrics."""

from lift import hookimpl
from lift_metrics.faceid import FaceID
from lift_metrics.image_metrics import PSNR, SSIM
from lift_metrics.perceptual import DISTSMetric, LPIPSMetric, PerceptualMetric


@hookimpl
def lift_register_metrics():
    return [PSNR, SSIM, PerceptualMetric, LPIPSMetric, DISTSMetric, FaceID]
