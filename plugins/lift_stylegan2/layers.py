"""StyleGAN2 building blocks: equalised learning rate, FIR resampling, modulated convolution.

Pure PyTorch (no custom CUDA build). Written from the StyleGAN2 paper (Karras et al., CVPR 2020,
"Analyzing and Improving the Image Quality of StyleGAN") and the documented behaviour of the
public reference implementations; no code is copied from them.

Equalised learning rate (ProGAN, Sect. 4.1): parameters are stored as N(0, 1/lr_multiplier)
and scaled at run time by ``lr_multiplier / sqrt(fan_in)``, so Adam's per-parameter step size
is the same for every layer whatever its fan-in.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # keeps the activation variance of a leaky ReLU layer at 1


def bias_act(
    x: torch.Tensor,
    bias: torch.Tensor | None,
    lrelu: bool,
    gain: float = 1.0,
    clamp: float | None = None,
) -> torch.Tensor:
    """``clamp(act(x + bias) * gain)`` with ``act`` leaky ReLU (times sqrt 2) or identity."""
    if bias is not None:
        shape = [1, -1] + [1] * (x.ndim - 2)
        x = x + bias.reshape(shape)
    if lrelu:
        x = F.leaky_relu(x, LRELU_SLOPE)
        gain = gain * LRELU_GAIN
    if gain != 1:
        x = x * gain
    if clamp is not None:
        x = x.clamp(-clamp, clamp)
    return x


# --- FIR filtering ------------------------------------------------------------------------------


def make_fir_filter(taps: Sequence[float]) -> torch.Tensor:
    """Separable 2-D low-pass filter from 1-D taps, normalised to unit sum."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    assert f.ndim == 1 and f.numel() > 0
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Upsample by zero insertion, pad, convolve with the FIR filter ``f``, downsample.

    ``padding`` is (left, right, top, bottom) applied after upsampling; negative values crop.
    Output size per axis: ``(in * up + pad0 + pad1 - taps) // down + 1``.
    """
    assert x.ndim == 4 and f.ndim == 2, (x.shape, f.shape)
    n, c, h, w = x.shape
    if up > 1:  # sample i lands at i*up, followed by up-1 zeros
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    px0, px1, py0, py1 = padding
    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]
    # True convolution = correlation with the flipped filter; gain is spread over both axes.
    weight = (f * gain).flip([0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsampling with the FIR filter (gain 4 keeps the mean after zero insertion)."""
    taps = f.shape[0]
    p0, p1 = (taps + 1) // 2, (taps - 2) // 2
    return upfirdn2d(x, f, up=2, padding=(p0, p1, p0, p1), gain=4.0)


def downsample2d(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x downsampling after FIR low-pass filtering."""
    taps = f.shape[0]
    p0, p1 = (taps - 1) // 2, (taps - 2) // 2
    return upfirdn2d(x, f, down=2, padding=(p0, p1, p0, p1))


def conv2d_resample(
    x: torch.Tensor,
    weight: torch.Tensor,
    f: torch.Tensor | None,
    up: int = 1,
    down: int = 1,
    groups: int = 1,
) -> torch.Tensor:
    """Size-preserving (odd kernel) convolution, optionally 2x up or down with FIR filtering.

    ``up=2``: a stride-2 transposed convolution with ``weight`` (= zero insertion, then a true
    convolution, i.e. correlation with the spatially flipped kernel: the reference's
    orientation, so its weights load unchanged), then the FIR filter. ``down=2``: the FIR
    filter, then a stride-2 correlation. ``weight`` is ``[out, in/groups, k, k]`` in all cases.
    """
    assert up in (1, 2) and down in (1, 2) and not (up > 1 and down > 1)
    k = weight.shape[-1]
    assert weight.shape[-2] == k and k % 2 == 1, weight.shape
    if up == 1 and down == 1:
        return F.conv2d(x, weight, padding=k // 2, groups=groups)
    assert f is not None
    taps = f.shape[0]
    if down == 2:
        if k == 1:  # filter-and-subsample first: cheaper
            return F.conv2d(downsample2d(x, f), weight, groups=groups)
        p = k // 2 + (taps - 1) // 2  # total pad keeps the output at exactly half size
        x = upfirdn2d(x, f, padding=(p, p - (taps % 2 == 1), p, p - (taps % 2 == 1)))
        return F.conv2d(x, weight, stride=2, groups=groups)
    # up == 2: transposed conv gives 2*in + k - 2 samples; the filter trims back to 2*in.
    out_ch, in_per_group = weight.shape[0], weight.shape[1]
    wt = weight.reshape(groups, out_ch // groups, in_per_group, k, k).transpose(1, 2)
    wt = wt.reshape(groups * in_per_group, out_ch // groups, k, k)
    x = F.conv_transpose2d(x, wt, stride=2, groups=groups)
    total = taps - k + 1  # pad so that (2n + k - 2) + total - taps + 1 == 2n
    p0 = total - total // 2
    p1 = total // 2
    return upfirdn2d(x, f, padding=(p0, p1, p0, p1), gain=4.0)


# --- equalised learning-rate layers -------------------------------------------------------------


class EqualizedLinear(nn.Module):
    """Fully connected layer with equalised learning rate.

    Stored weight ~ N(0, 1/lr_multiplier²); used weight = stored * lr_multiplier / sqrt(in).
    Stored bias = bias_init / lr_multiplier; used bias = stored * lr_multiplier.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,     # value of the used bias at initialisation (1 for styles)
        lr_multiplier: float = 1.0,  # 0.01 in the mapping network
        lrelu: bool = False,        # leaky ReLU (slope 0.2, gain sqrt 2) after the bias
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.lrelu = lrelu
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = (
            nn.Parameter(torch.full([out_features], float(bias_init) / lr_multiplier))
            if bias else None
        )
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 2 and x.shape[1] == self.in_features, x.shape
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        if b is not None and not self.lrelu:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.lrelu)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, lrelu={self.lrelu}"


class EqualizedConv2d(nn.Module):
    """Convolution with equalised learning rate, optional FIR 2x up/downsampling.

    Used weight = stored * 1/sqrt(in * k * k). ``gain`` in ``forward`` scales the activation
    (the residual discriminator uses sqrt(1/2) on both branches so their sum keeps variance).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        lrelu: bool = False,
        up: int = 1,
        down: int = 1,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,  # clamp activations to ±value (None: no clamp)
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.lrelu = lrelu
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", make_fir_filter(resample_filter), persistent=False)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1] == self.in_channels, x.shape
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w, self.resample_filter, up=self.up, down=self.down)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias, self.lrelu, gain=gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (f"in={self.in_channels}, out={self.out_channels}, k={self.kernel_size}, "
                f"up={self.up}, down={self.down}, lrelu={self.lrelu}")


# --- modulated convolution (StyleGAN2 Sect. 2.2, Eq. 1-3) ------------------------------------------


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    demodulate: bool = True,
    up: int = 1,
    resample_filter: torch.Tensor | None = None,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Per-sample modulated (and demodulated) convolution.

    Eq. 1: w'_ijk = s_i * w_ijk (s scales input channel i).
    Eq. 3: w''_ijk = w'_ijk / sqrt(sum_{i,k} w'_ijk² + eps) (unit output std per channel j).
    Computed without per-sample weights: scaling the input channels by s_i and the output
    channels by the demodulation coefficient is the same linear map, and one shared-weight
    convolution is much faster than a grouped one in training.
    x [N, I, H, W], weight [O, I, k, k], styles [N, I] → [N, O, H*up, W*up].
    """
    n, in_ch = x.shape[:2]
    assert weight.shape[1] == in_ch and styles.shape == (n, in_ch), (x.shape, weight.shape,
                                                                        styles.shape)
    x = x * styles.reshape(n, in_ch, 1, 1).to(x.dtype)  # Eq. 1
    x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up)
    if demodulate:  # Eq. 3: sum_{i,k} (s_i w_ijk)² = sum_i s_i² sum_k w_ijk²
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + eps).rsqrt()
        x = x * dcoefs.reshape(n, -1, 1, 1).to(x.dtype)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution + per-pixel noise + bias + leaky ReLU (one w per layer)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,                # output resolution
        kernel_size: int = 3,
        up: int = 1,                    # 2 in the first layer of every block above 4x4
        use_noise: bool = True,
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.conv_clamp = conv_clamp
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)  # styles start at 1
        self.register_buffer("resample_filter", make_fir_filter(resample_filter), persistent=False)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        assert noise_mode in ("random", "const", "none"), noise_mode
        styles = self.affine(w)
        # Demodulation makes the weight's scale irrelevant, so no equalised-lr gain is needed.
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, up=self.up,
                             resample_filter=self.resample_filter)
        assert x.shape[2:] == (self.resolution, self.resolution), x.shape
        if self.use_noise and noise_mode != "none":
            if noise_mode == "random":
                noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution,
                                    device=x.device, dtype=x.dtype)
            else:
                noise = self.noise_const.to(x.dtype)
            x = x + noise * self.noise_strength
        return bias_act(x, self.bias, lrelu=True, clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution without demodulation (the skip generator's tRGB)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int,
                 conv_clamp: float | None = None):
        super().__init__()
        self.in_channels = in_channels
        self.conv_clamp = conv_clamp
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        # Without demodulation the equalised-lr gain is needed; folded into the styles.
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False)
        return bias_act(x, self.bias, lrelu=False, clamp=self.conv_clamp)


class MinibatchStdDev(nn.Module):
    """Appends the per-group standard deviation of features as extra channels (ProGAN Sect. 3).

    Groups are formed across the batch by stride (sample i joins group i mod N/G), as in the
    reference. G is min(group_size, N); where N is not a multiple of it (an uneven last
    validation batch; the reference would fail) G is the largest divisor of N below it.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        f = self.num_channels
        assert c % f == 0, (c, f)
        y = x.reshape(g, n // g, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()      # std over the group [n/g, f, c/f, h, w]
        y = y.mean(dim=[2, 3, 4])                        # [n/g, f]
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)    # [n, f, h, w]
        return torch.cat([x, y], dim=1)


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Pixel norm of z: x / sqrt(mean(x²)) (StyleGAN's mapping input)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()
