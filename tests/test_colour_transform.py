"""GainBias (Eq. 15-16) against hand computations and an independent dense least squares."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lift.components import ColourTransform
from lift.registry import Registry
from lift_colour import GainBias
from lift_colour.gain_bias import block_tridiagonal_solve, interpolation_weights

f64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _rsz(maps: torch.Tensor, size) -> torch.Tensor:
    # The Rsz convention the tests pin, written out here rather than imported from the plugin.
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def _render(gain, bias, source):
    """Eq. 16 written out: Rsz(G) * I + Rsz(B)."""
    size = source.shape[-2:]
    return _rsz(gain, size) * source + _rsz(bias, size)


def _smooth_field(k: int, nb: int = 1, nc: int = 3, seed: int = 0):
    """Smooth gain / bias maps on the k x k grid (low-frequency sines, random phases)."""
    g = _gen(seed)
    u = torch.linspace(0, 1, k, dtype=f64)
    uu, vv = torch.meshgrid(u, u, indexing="ij")
    ph = torch.rand(nb, nc, 4, generator=g, dtype=f64)[..., None, None] * 2 * math.pi
    gain = 1.0 + 0.3 * torch.sin(2 * uu + ph[:, :, 0]) * torch.cos(1.5 * vv + ph[:, :, 1])
    bias = 0.1 * torch.sin(1.7 * vv + ph[:, :, 2]) + 0.05 * torch.cos(2.2 * uu + ph[:, :, 3])
    return gain, bias


# --- Rsz ------------------------------------------------------------------------------------


def _node_coordinate(n_out: int, k: int) -> torch.Tensor:
    """align_corners=False by hand: texel i samples the grid at (i + 0.5) k / n - 0.5, clamped
    to the outermost cell centres."""
    return ((torch.arange(n_out, dtype=f64) + 0.5) * k / n_out - 0.5).clamp(0, k - 1)


@pytest.mark.parametrize("size", [(64, 48), (13, 7), (5, 3)])
def test_rsz_is_bilinear_with_cell_centred_nodes(size):
    # Bilinear reproduces an affine map exactly, so Rsz of G_ab = 0.2 + 0.03 a - 0.05 b is the
    # same affine function of each texel's (clamped) grid coordinate.
    k = 8
    a = torch.arange(k, dtype=f64)
    grid = (0.2 + 0.03 * a[:, None] - 0.05 * a[None, :]).expand(1, 1, k, k)
    tex = torch.rand(1, 1, *size, generator=_gen(3), dtype=f64)
    params = {"gain": grid, "bias": torch.zeros_like(grid)}
    out = GainBias(grid_size=k).apply(params, tex)
    sy, sx = _node_coordinate(size[0], k), _node_coordinate(size[1], k)
    expect = (0.2 + 0.03 * sy[:, None] - 0.05 * sx[None, :]) * tex[0, 0]
    assert torch.allclose(out[0, 0], expect, atol=1e-12)


def test_fit_uses_the_separable_form_of_the_same_operator():
    k, (h, w) = 6, (20, 9)
    wy = interpolation_weights(k, h, dtype=f64)
    wx = interpolation_weights(k, w, dtype=f64)
    maps = torch.rand(2, 3, k, k, generator=_gen(4), dtype=f64)
    assert torch.allclose(wy @ maps @ wx.t(), _rsz(maps, (h, w)), atol=1e-13)


# --- Eq. 15 ---------------------------------------------------------------------------------


def _dense_reference(x, y, m, k, smoothness, identity_weight):
    """The objective of GainBias written as one stacked least-squares system, solved by
    torch.linalg.lstsq: design columns = Rsz of one-hot grids (times x for the gain)."""
    h, w = x.shape
    basis = torch.eye(k * k, dtype=f64).view(k * k, 1, k, k)
    wm = _rsz(basis, (h, w)).view(k * k, h * w).t()                    # [HW, k^2]
    sw = torch.sqrt(k * k / (h * w) * m.flatten())[:, None]
    rows = [sw * torch.cat([wm * x.flatten()[:, None], wm], 1)]
    rhs = [sw[:, 0] * y.flatten()]
    for a in range(k):
        for b in range(k):
            for a2, b2 in ((a + 1, b), (a, b + 1)):
                if a2 < k and b2 < k:
                    for off in (0, k * k):
                        r = torch.zeros(1, 2 * k * k, dtype=f64)
                        r[0, off + a * k + b] = math.sqrt(smoothness)
                        r[0, off + a2 * k + b2] = -math.sqrt(smoothness)
                        rows.append(r)
                        rhs.append(torch.zeros(1, dtype=f64))
    rows.append(math.sqrt(identity_weight) * torch.eye(2 * k * k, dtype=f64))
    identity = torch.cat([torch.ones(k * k, dtype=f64), torch.zeros(k * k, dtype=f64)])
    rhs.append(math.sqrt(identity_weight) * identity)
    sol = torch.linalg.lstsq(torch.cat(rows), torch.cat(rhs)[:, None]).solution[:, 0]
    return sol[: k * k].view(k, k), sol[k * k:].view(k, k)


@pytest.mark.parametrize("h,w,k", [(24, 20, 4), (7, 9, 5), (16, 12, 3)])
def test_fit_equals_dense_least_squares(h, w, k):
    g = _gen(h * w + k)
    x = torch.rand(2, 3, h, w, generator=g, dtype=f64)
    y = torch.rand(2, 3, h, w, generator=g, dtype=f64)
    mask = (torch.rand(2, 1, h, w, generator=g) > 0.3).to(f64)
    params = GainBias(k, smoothness=0.01, identity_weight=1e-3).fit(x, y, mask)
    for bi in range(2):
        for c in range(3):
            gain, bias = _dense_reference(x[bi, c], y[bi, c], mask[bi, 0], k, 0.01, 1e-3)
            assert torch.allclose(params["gain"][bi, c], gain, atol=1e-10)
            assert torch.allclose(params["bias"][bi, c], bias, atol=1e-10)


def test_recovers_a_known_smooth_field():
    # Full visibility and a random source pin every node (per-cell data weight ~0.1 on the
    # gain); smoothness 1e-9 then biases the maps by ~1e-9 |L G| / 0.1 << 1e-4.
    k = 32
    gain, bias = _smooth_field(k, nb=1, seed=1)
    source = torch.rand(1, 3, 128, 128, generator=_gen(2), dtype=f64)
    target = _render(gain, bias, source)
    params = GainBias(k, smoothness=1e-9, identity_weight=0.0).fit(source, target)
    assert params["gain"].shape == params["bias"].shape == (1, 3, k, k)
    assert (params["gain"] - gain).abs().max() <= 1e-4
    assert (params["bias"] - bias).abs().max() <= 1e-4


def test_float32_fit_with_the_defaults_is_close():
    k = 32
    gain, bias = _smooth_field(k, nb=1, seed=5)
    source = torch.rand(1, 3, 128, 128, generator=_gen(6), dtype=f64)
    target = _render(gain, bias, source)
    params = GainBias().fit(source.float(), target.float())
    assert params["gain"].dtype == torch.float32
    assert (params["gain"].double() - gain).abs().max() <= 5e-3
    assert (params["bias"].double() - bias).abs().max() <= 5e-3


def test_holes_fit_the_visible_texels_and_continue_smoothly_into_empty_cells():
    # k = 8 on 64^2: node a (centre at 8a + 4) touches texels whose centres lie within one
    # cell of it. A hole over texels [8, 56)^2 leaves nodes 2..5 x 2..5 untouched by data.
    k, n = 8, 64
    a = torch.arange(k, dtype=f64)
    # Affine maps: exactly harmonic, so the smooth continuation into the hole is the field.
    gain = (0.9 + 0.04 * a[:, None] + 0.02 * a[None, :]).expand(1, 3, k, k).contiguous()
    bias = (0.05 - 0.01 * a[:, None] + 0.015 * a[None, :]).expand(1, 3, k, k).contiguous()
    source = torch.rand(1, 3, n, n, generator=_gen(7), dtype=f64)
    target = _render(gain, bias, source)
    mask = torch.ones(1, 1, n, n, dtype=f64)
    mask[..., 8:56, 8:56] = 0
    mask[..., :20, 40:] = 0            # and a hole reaching the border
    source[..., 8:56, 8:56] = float("nan")  # unseen texels are ignored, even NaN

    params = GainBias(k, smoothness=1e-6, identity_weight=0.0).fit(source, target, mask)
    fitted = _render(params["gain"], params["bias"], source)
    seen = mask.expand_as(source) > 0
    assert (fitted - target)[seen].abs().max() <= 1e-4

    empty = slice(2, 6)
    for name, truth in (("gain", gain), ("bias", bias)):
        p = params[name]
        assert torch.isfinite(p).all()
        # Nothing but the regulariser acts on an empty node: it is the mean of its neighbours.
        inner = p[..., empty, empty]
        mean_nb = (p[..., 1:5, 2:6] + p[..., 3:7, 2:6] + p[..., 2:6, 1:5] + p[..., 2:6, 3:7]) / 4
        assert torch.allclose(inner, mean_nb, atol=1e-9)
        # ... hence between the values around the hole (maximum principle) and, the field being
        # harmonic, equal to it.
        ring = torch.cat([p[..., 1, 1:7].flatten(), p[..., 6, 1:7].flatten(),
                          p[..., 1:7, 1].flatten(), p[..., 1:7, 6].flatten()])
        assert ring.min() - 1e-9 <= inner.min() and inner.max() <= ring.max() + 1e-9
        assert torch.allclose(inner, truth[..., empty, empty], atol=1e-3)


def test_k1_is_the_global_least_squares_gain_and_bias():
    g = _gen(8)
    x = torch.rand(2, 3, 40, 30, generator=g, dtype=f64)
    y = 0.7 * x + 0.2 + 0.05 * torch.randn(2, 3, 40, 30, generator=g, dtype=f64)
    mask = (torch.rand(2, 1, 40, 30, generator=g) > 0.5).to(f64)
    params = GainBias(grid_size=1, identity_weight=0.0).fit(x, y, mask)
    for bi in range(2):
        sel = mask[bi, 0] > 0
        for c in range(3):
            xs, ys = x[bi, c][sel], y[bi, c][sel]
            gain = ((xs - xs.mean()) * (ys - ys.mean())).mean() / ((xs - xs.mean()) ** 2).mean()
            bias = ys.mean() - gain * xs.mean()
            assert params["gain"][bi, c, 0, 0].item() == pytest.approx(gain.item(), abs=1e-6)
            assert params["bias"][bi, c, 0, 0].item() == pytest.approx(bias.item(), abs=1e-6)


def test_batch_items_are_independent():
    g = _gen(9)
    x = torch.rand(2, 3, 32, 32, generator=g, dtype=f64)
    y = torch.rand(2, 3, 32, 32, generator=g, dtype=f64)
    mask = (torch.rand(2, 1, 32, 32, generator=g) > 0.4).to(f64)
    gb = GainBias(grid_size=8)
    both = gb.fit(x, y, mask)
    for bi in range(2):
        alone = gb.fit(x[bi:bi + 1], y[bi:bi + 1], mask[bi:bi + 1])
        for key in ("gain", "bias"):
            assert torch.allclose(both[key][bi:bi + 1], alone[key], atol=1e-12)


# --- Eq. 16 ---------------------------------------------------------------------------------


def test_apply_resizes_the_maps_to_each_texture():
    k = 16
    gain, bias = _smooth_field(k, nb=1, seed=10)
    gb = GainBias(grid_size=k, smoothness=1e-9, identity_weight=0.0)  # exact recovery, as above
    params = gb.fit(src := torch.rand(1, 3, 64, 64, generator=_gen(11), dtype=f64),
                    _render(gain, bias, src))
    for size in ((128, 128), (48, 80)):
        expr = torch.rand(4, 3, *size, generator=_gen(12), dtype=f64)  # one capture, 4 expressions
        out = gb.apply(params, expr)
        assert out.shape == expr.shape
        assert torch.allclose(out, _render(gain, bias, expr), atol=1e-6)
    assert gb.apply(params, 3 * expr).max() > 1  # no silent clamp ...
    assert gb.apply(params, 3 * expr, clamp=(0.0, 1.0)).max() <= 1  # ... unless asked


def test_apply_checks_shapes():
    gb = GainBias(grid_size=4)
    params = {"gain": torch.ones(2, 3, 4, 4), "bias": torch.zeros(2, 3, 4, 4)}
    with pytest.raises(ValueError, match="channels"):
        gb.apply(params, torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="batch"):
        gb.apply(params, torch.rand(3, 3, 8, 8))


# --- errors, modes, solver --------------------------------------------------------------------


def test_a_texture_without_visible_texels_is_an_error_naming_it():
    x = torch.rand(3, 3, 16, 16)
    mask = torch.ones(3, 1, 16, 16)
    mask[1] = 0
    with pytest.raises(ValueError, match="batch item 1"):
        GainBias(grid_size=4).fit(x, x, mask)
    with pytest.raises(ValueError, match="mask must be"):
        GainBias(grid_size=4).fit(x, x, mask[:, :, :8])


def test_a_constant_source_without_identity_prior_is_singular():
    x = torch.full((1, 3, 8, 8), 0.5)
    with pytest.raises(ValueError, match="channel 0.*singular"):
        GainBias(grid_size=1, identity_weight=0.0).fit(x, x)
    # The default identity prior resolves it: gain 1, bias 0 is then the unique optimum.
    params = GainBias(grid_size=2).fit(x, x)
    assert torch.allclose(params["gain"], torch.ones(1, 3, 2, 2), atol=1e-6)


def test_fit_works_under_inference_mode_and_no_grad():
    gain, bias = _smooth_field(8, nb=2, seed=13)
    x = torch.rand(2, 3, 32, 32, generator=_gen(14), dtype=f64)
    ref = GainBias(grid_size=8).fit(x, _render(gain, bias, x))
    for ctx in (torch.inference_mode, torch.no_grad):
        with ctx():
            got = GainBias(grid_size=8).fit(x, _render(gain, bias, x))
        assert torch.allclose(got["gain"], ref["gain"], atol=1e-12)


def test_block_tridiagonal_solve_equals_a_dense_solve():
    g = _gen(15)
    n, m = 5, 3
    diag = torch.randn(2, n, m, m, generator=g, dtype=f64)
    diag = diag @ diag.mT + 4 * m * torch.eye(m, dtype=f64)
    upper = torch.randn(2, n - 1, m, m, generator=g, dtype=f64)
    rhs = torch.randn(2, n, m, generator=g, dtype=f64)
    dense = torch.zeros(2, n * m, n * m, dtype=f64)
    for i in range(n):
        dense[:, i * m:(i + 1) * m, i * m:(i + 1) * m] = diag[:, i]
        if i < n - 1:
            dense[:, i * m:(i + 1) * m, (i + 1) * m:(i + 2) * m] = upper[:, i]
            dense[:, (i + 1) * m:(i + 2) * m, i * m:(i + 1) * m] = upper[:, i].mT
    x, info = block_tridiagonal_solve(diag, upper, rhs)
    assert (info == 0).all()
    expect = torch.linalg.solve(dense, rhs.flatten(1)[..., None])[..., 0]
    assert torch.allclose(x.flatten(1), expect, atol=1e-12)


def test_constructor_validates():
    with pytest.raises(ValueError, match="grid_size"):
        GainBias(grid_size=0)
    with pytest.raises(ValueError, match="smoothness"):
        GainBias(smoothness=-1.0)


# --- registration -----------------------------------------------------------------------------


def test_hook_registers_gain_bias(fresh_manager):
    import lift_colour.hooks

    fresh_manager.register(lift_colour.hooks, name="colour")
    registry = Registry(fresh_manager)
    assert registry.get("colour_transform", "GainBias") is GainBias
    assert issubclass(GainBias, ColourTransform) and GainBias.kind == "colour_transform"


def test_builtin_registry_has_gain_bias(builtin_registry):
    (info,) = [c for c in builtin_registry.components("colour_transform") if c.name == "GainBias"]
    assert info.plugin == "colour" and info.cls is GainBias
