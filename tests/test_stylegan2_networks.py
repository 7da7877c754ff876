"""StyleGAN2 layers and networks: shapes, parameter counts, equalised lr, modulation, FIR."""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

from lift_stylegan2.layers import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    conv2d_resample,
    downsample2d,
    make_fir_filter,
    modulated_conv2d,
    upfirdn2d,
    upsample2d,
)
from lift_stylegan2.networks import Discriminator, Generator, MappingNetwork

NARROW = dict(channel_base=256, channel_max=32)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_official_networks_at_64():
    # NVlabs stylegan2-ada-pytorch, --cfg stylegan2 networks at 64², channel_base 4096,
    # channel_max 256 (FACTS.md): G 7,056,600 and D 4,727,617 parameters.
    g = Generator(z_dim=512, w_dim=512, resolution=64, channel_base=4096, channel_max=256)
    d = Discriminator(resolution=64, channel_base=4096, channel_max=256)
    assert count(g) == 7_056_600
    assert count(d) == 4_727_617
    assert count(g.mapping) == 8 * (512 * 512 + 512)
    assert g.num_ws == 10


@pytest.mark.parametrize("resolution", [8, 16, 32, 64, 128])
def test_shapes_at_every_resolution(resolution):
    torch.manual_seed(0)
    g = Generator(z_dim=16, w_dim=16, resolution=resolution, **NARROW)
    d = Discriminator(resolution=resolution, **NARROW)
    log2 = int(math.log2(resolution))
    assert g.num_ws == 2 * log2 - 2
    assert g.synthesis.block_resolutions == [2**i for i in range(2, log2 + 1)]
    assert d.block_resolutions == [2**i for i in range(log2, 2, -1)]
    assert len(g.synthesis.ws_resolutions) == g.num_ws
    z = torch.randn(4, 16)
    ws = g.mapping(z)
    assert ws.shape == (4, g.num_ws, 16)
    img = g.synthesis(ws, noise_mode="const")
    assert img.shape == (4, 3, resolution, resolution)
    assert torch.isfinite(img).all()
    assert d(img).shape == (4, 1)
    # Generator.forward is synthesis(mapping(z)).
    torch.testing.assert_close(g(z, noise_mode="const"), img)


def test_networks_reject_bad_shapes():
    g = Generator(z_dim=8, w_dim=8, resolution=16, **NARROW)
    with pytest.raises(AssertionError, match="ws must be"):
        g.synthesis(torch.zeros(2, g.num_ws - 1, 8))
    d = Discriminator(resolution=16, **NARROW)
    with pytest.raises(AssertionError, match="D expects"):
        d(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError):
        Generator(resolution=48)


def test_equalized_linear_runtime_scaling():
    torch.manual_seed(0)
    layer = EqualizedLinear(50, 7, bias_init=0.5, lr_multiplier=0.01)
    # Stored parameters ~ N(0, 1/lr²) and bias_init/lr; used ones are scaled back at run time.
    assert 80 < layer.weight.std().item() < 120
    torch.testing.assert_close(layer.bias * 0.01, torch.full([7], 0.5))
    x = torch.randn(3, 50)
    expected = x @ (layer.weight * 0.01 / math.sqrt(50)).t() + layer.bias * 0.01
    torch.testing.assert_close(layer(x), expected)
    # With leaky ReLU: slope 0.2 then gain sqrt(2).
    act = EqualizedLinear(50, 7, lrelu=True)
    pre = x @ (act.weight / math.sqrt(50)).t() + act.bias
    torch.testing.assert_close(act(x), F.leaky_relu(pre, 0.2) * math.sqrt(2))


def test_equalized_conv_runtime_scaling():
    torch.manual_seed(0)
    conv = EqualizedConv2d(5, 4, 3, bias=True)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 5, 6, 6)
    expected = F.conv2d(x, conv.weight / math.sqrt(5 * 9), conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)
    torch.testing.assert_close(conv(x, gain=0.5), expected * 0.5)


def test_modulated_conv_matches_hand_computation():
    # Tiny example, every product written out: 2 samples, 2 -> 2 channels, 3x3 kernel.
    torch.manual_seed(0)
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    weight = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    styles = torch.tensor([[0.5, 2.0], [1.5, -1.0]], dtype=torch.float64)
    xp = F.pad(x, [1, 1, 1, 1])
    expected = torch.zeros(2, 2, 4, 4, dtype=torch.float64)
    plain = torch.zeros(2, 2, 4, 4, dtype=torch.float64)
    for n in range(2):
        for o in range(2):
            wmod = [[[weight[o, i, a, b] * styles[n, i] for b in range(3)] for a in range(3)]
                    for i in range(2)]
            norm = math.sqrt(sum(float(wmod[i][a][b]) ** 2 for i in range(2) for a in range(3)
                                 for b in range(3)) + 1e-8)
            for r in range(4):
                for c in range(4):
                    acc = sum(wmod[i][a][b] * xp[n, i, r + a, c + b]
                              for i in range(2) for a in range(3) for b in range(3))
                    plain[n, o, r, c] = acc
                    expected[n, o, r, c] = acc / norm
    torch.testing.assert_close(modulated_conv2d(x, weight, styles, demodulate=True), expected)
    torch.testing.assert_close(modulated_conv2d(x, weight, styles, demodulate=False), plain)


def test_demodulation_gives_unit_output_variance():
    # Eq. 3's purpose: with unit-variance i.i.d. inputs, outputs have unit variance
    # whatever the style scale.
    torch.manual_seed(0)
    x = torch.randn(4, 64, 16, 16)
    weight = torch.randn(32, 64, 3, 3)
    styles = torch.rand(4, 64) * 10
    y = modulated_conv2d(x, weight, styles)[:, :, 1:-1, 1:-1]
    assert abs(y.var().item() - 1.0) < 0.1


def _naive_upfirdn_1d(x, f, up, down, p0, p1):
    up_x = [0.0] * (len(x) * up)
    for i, v in enumerate(x):
        up_x[i * up] = v
    padded = [0.0] * max(p0, 0) + up_x[max(-p0, 0): len(up_x) - max(-p1, 0)] + [0.0] * max(p1, 0)
    out = [sum(padded[j + t] * f[len(f) - 1 - t] for t in range(len(f)))
           for j in range(len(padded) - len(f) + 1)]
    return out[::down]


@pytest.mark.parametrize("up,down,pad", [(1, 1, (1, 2)), (2, 1, (2, 1)), (1, 2, (1, 1)),
                                         (2, 1, (-1, 0))])
def test_upfirdn2d_matches_naive_separable(up, down, pad):
    torch.manual_seed(0)
    taps = [1.0, 2.0, 4.0, 1.0]  # asymmetric: catches a missing flip
    f1 = torch.tensor(taps)
    f2 = torch.outer(f1, f1)
    # A separable (rank-1) image: the 2-D result is the outer product of two 1-D results.
    img = torch.randn(6, dtype=torch.float64)
    col = torch.randn(6, dtype=torch.float64)
    x = torch.outer(col, img)[None, None]
    got = upfirdn2d(x, f2.double(), up=up, down=down, padding=(pad[0], pad[1], pad[0], pad[1]))
    rows = _naive_upfirdn_1d(col.tolist(), taps, up, down, *pad)
    cols = _naive_upfirdn_1d(img.tolist(), taps, up, down, *pad)
    expected = torch.outer(torch.tensor(rows, dtype=torch.float64),
                           torch.tensor(cols, dtype=torch.float64))
    torch.testing.assert_close(got[0, 0], expected)


def test_fir_resampling_keeps_constants_and_sizes():
    f = make_fir_filter([1, 3, 3, 1])
    x = torch.full((1, 2, 8, 8), 3.0)
    up = upsample2d(x, f)
    down = downsample2d(x, f)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    torch.testing.assert_close(up[:, :, 2:-2, 2:-2], torch.full((1, 2, 12, 12), 3.0))
    torch.testing.assert_close(down[:, :, 1:-1, 1:-1], torch.full((1, 2, 2, 2), 3.0))


def test_resampling_convolutions_equal_filter_then_conv():
    # Up: transposed conv + FIR == FIR upsampling (zero-extended, uncropped) then a valid 3x3
    # true convolution (correlation with the flipped kernel, the reference's orientation).
    # Down: FIR + strided conv == FIR low-pass, valid correlation, subsampling.
    torch.manual_seed(0)
    f = make_fir_filter([1, 3, 3, 1]).double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64)
    upsampled = upfirdn2d(x, f, up=2, padding=(3, 2, 3, 2), gain=4.0)  # 2n + 2 samples
    expected = F.conv2d(upsampled, w.flip([2, 3]))
    assert expected.shape[-1] == 10
    torch.testing.assert_close(conv2d_resample(x, w, f, up=2), expected)
    # Away from the border this is FIR upsampling followed by a same-size convolution.
    same = F.conv2d(upsample2d(x, f), w.flip([2, 3]), padding=1)
    torch.testing.assert_close(conv2d_resample(x, w, f, up=2)[..., 1:-1, 1:-1],
                               same[..., 1:-1, 1:-1])
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    blurred = upfirdn2d(x, f, padding=(2, 2, 2, 2))
    torch.testing.assert_close(conv2d_resample(x, w, f, down=2),
                               F.conv2d(blurred, w)[:, :, ::2, ::2])
    w1 = torch.randn(4, 3, 1, 1, dtype=torch.float64)
    torch.testing.assert_close(conv2d_resample(x, w1, f, down=2),
                               F.conv2d(upfirdn2d(x, f, padding=(1, 1, 1, 1)), w1)[:, :, ::2, ::2])


def test_minibatch_std_matches_hand_computation():
    torch.manual_seed(0)
    x = torch.randn(4, 2, 3, 3)
    y = MinibatchStdDev(group_size=2, num_channels=1)(x)
    assert y.shape == (4, 3, 3, 3)
    # Groups by stride: {0, 2} and {1, 3}.
    for members in ([0, 2], [1, 3]):
        std = (x[members].var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        for m in members:
            torch.testing.assert_close(y[m, 2], torch.full((3, 3), std.item()))
    torch.testing.assert_close(y[:, :2], x)


def test_mapping_truncation_and_w_avg_tracking():
    torch.manual_seed(0)
    mapping = MappingNetwork(z_dim=8, w_dim=8, num_ws=3, num_layers=2, w_avg_beta=0.5)
    z = torch.randn(6, 8)
    assert mapping.w_avg.abs().sum() == 0
    ws = mapping(z, update_w_avg=True)
    assert ws.shape == (6, 3, 8)
    torch.testing.assert_close(mapping.w_avg, ws[:, 0].mean(0) * 0.5)  # lerp from zero
    torch.testing.assert_close(ws[:, 0], ws[:, 2])  # W broadcast to identical W+ rows
    before = mapping.w_avg.clone()
    mapping(z)  # no update unless asked
    torch.testing.assert_close(mapping.w_avg, before)
    truncated = mapping(z, truncation_psi=0.0)
    torch.testing.assert_close(truncated, before.expand(6, 3, 8))
    half = mapping(z, truncation_psi=0.5)
    torch.testing.assert_close(half, (ws + before) / 2)
    # Pixel norm: z's scale does not matter.
    torch.testing.assert_close(mapping(3 * z), ws)


def test_noise_modes_and_w_rows():
    torch.manual_seed(0)
    g = Generator(z_dim=8, w_dim=8, resolution=16, **NARROW)
    for module in g.modules():  # give noise some weight so the modes differ
        if hasattr(module, "noise_strength"):
            module.noise_strength.data.fill_(0.5)
    ws = g.mapping(torch.randn(2, 8))
    const = g.synthesis(ws, noise_mode="const")
    torch.testing.assert_close(g.synthesis(ws, noise_mode="const"), const)
    assert not torch.allclose(g.synthesis(ws, noise_mode="random"), const)
    assert not torch.allclose(g.synthesis(ws, noise_mode="none"), const)
    # The last W+ row drives only the last tRGB: perturbing it changes the image a little;
    # rows of the 4x4 block change it as well (every row is used).
    for row in range(g.num_ws):
        ws2 = ws.clone()
        ws2[:, row] += 1.0
        assert not torch.allclose(g.synthesis(ws2, noise_mode="const"), const), row


def test_parameters_up_to_resolution():
    g = Generator(z_dim=8, w_dim=8, resolution=32, **NARROW)
    low = {id(p) for p in g.synthesis.parameters_up_to(8)}
    expected = {id(p) for b in g.synthesis.blocks[:2] for p in b.parameters()}
    assert low == expected
    assert [b.resolution for b in g.synthesis.blocks_up_to(8)] == [4, 8]
    high = {id(p) for b in g.synthesis.blocks[2:] for p in b.parameters()}
    assert low.isdisjoint(high)
    assert g.synthesis.ws_resolutions == [4, 8, 8, 16, 16, 32, 32, 32]


# --- numerical parity with the official networks (opt-in) ----------------------------------------

NVLABS_ENV = "LIFT_STYLEGAN2_ADA_PYTORCH"  # path of a stylegan2-ada-pytorch checkout


def _official_name_to_ours(name: str, resolution: int, generator: bool) -> str:
    """Official parameter names -> ours (the values load unchanged)."""
    if generator:
        if name.startswith("mapping.fc"):
            i, rest = name[len("mapping.fc"):].split(".", 1)
            return f"mapping.layers.{i}.{rest}"
        res, rest = name[len("synthesis.b"):].split(".", 1)
        return f"synthesis.blocks.{int(math.log2(int(res))) - 2}.{rest}"
    res, rest = name[1:].split(".", 1)
    if res == "4":  # epilogue: b4.conv / b4.fc / b4.out
        return rest
    return f"blocks.{int(math.log2(resolution)) - int(math.log2(int(res)))}.{rest}"


@pytest.mark.skipif(not os.environ.get(NVLABS_ENV), reason=f"set {NVLABS_ENV} to a checkout")
def test_outputs_match_official_networks():
    # Same weights -> same mapping, synthesis and discriminator outputs as NVlabs'
    # stylegan2-ada-pytorch (its pure-PyTorch reference ops on CPU, fp32, no clamping).
    # Checked here: mapping and D bit-identical, synthesis within 1e-5.
    sys.path.insert(0, os.environ[NVLABS_ENV])
    try:
        from training import networks as official
    finally:
        sys.path.pop(0)
    r, zd, base, cmax = 32, 64, 1024, 128
    torch.manual_seed(0)
    ref_g = official.Generator(
        z_dim=zd, c_dim=0, w_dim=zd, img_resolution=r, img_channels=3,
        mapping_kwargs=dict(num_layers=8),
        synthesis_kwargs=dict(channel_base=base, channel_max=cmax, num_fp16_res=0,
                              conv_clamp=None)).eval()
    ref_d = official.Discriminator(c_dim=0, img_resolution=r, img_channels=3, channel_base=base,
                                   channel_max=cmax, num_fp16_res=0, conv_clamp=None).eval()
    g = Generator(z_dim=zd, w_dim=zd, resolution=r, channel_base=base, channel_max=cmax).eval()
    d = Discriminator(resolution=r, channel_base=base, channel_max=cmax).eval()
    with torch.no_grad():
        for p in ref_g.parameters():
            if p.ndim == 0:  # noise strengths start at 0: make the noise path count
                p.fill_(0.3)
        ref_g.mapping.w_avg.normal_(0, 0.1)
    for ref, ours, is_g in ((ref_g, g, True), (ref_d, d, False)):
        state = ours.state_dict()
        for name, value in ref.state_dict().items():
            if name.endswith("resample_filter"):
                continue
            key = "mapping.w_avg" if name == "mapping.w_avg" else \
                _official_name_to_ours(name, r, is_g)
            assert state[key].shape == value.shape, name
            state[key] = value
        ours.load_state_dict(state)
    z = torch.randn(4, zd)
    with torch.no_grad():
        ws_ref = ref_g.mapping(z, None, truncation_psi=0.7)
        torch.testing.assert_close(g.mapping(z, truncation_psi=0.7), ws_ref)
        img_ref = ref_g.synthesis(ws_ref, noise_mode="const", force_fp32=True)
        torch.testing.assert_close(g.synthesis(ws_ref, noise_mode="const"), img_ref,
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(d(img_ref), ref_d(img_ref, None))
