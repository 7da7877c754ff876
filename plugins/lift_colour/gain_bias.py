"""GainBias: the k x k gain / bias colour transform of Sect 3.3 (Eq. 15-16).

The fitted model, per batch item and channel, at texel p with phone value x_p:

    y_p = Rsz(G)_p * x_p + Rsz(B)_p = sum_j w_pj (G_j x_p + B_j)

where j runs over the k x k grid nodes and w_pj are the bilinear weights of ``Rsz``. It is
linear in (G, B), so Eq. 15 is a weighted linear least-squares problem, solved exactly
(normal equations, block-tridiagonal Cholesky) with a small smoothness regulariser.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lift.components.colour_transform import ColourTransform


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``Rsz`` of Eq. 15-16: ``maps`` ``[B,C,k,k]`` resized to ``size = (H, W)``.

    Bilinear with ``align_corners=False`` and no antialiasing, i.e. exactly
    ``torch.nn.functional.interpolate(maps, size, mode="bilinear", align_corners=False)``:
    grid cell ``a`` covers texel rows ``[a H/k, (a+1) H/k)`` and its value sits at the cell
    centre; texels outside the outermost cell centres take the border value (no extrapolation).
    """
    return F.interpolate(maps, size=(int(size[0]), int(size[1])), mode="bilinear",
                         align_corners=False, antialias=False)


def interpolation_weights(k: int, n: int, *, dtype: torch.dtype,
                          device: torch.device | str | None = None) -> torch.Tensor:
    """The 1-D weights of ``Rsz`` along one axis of length ``n``: ``[n, k]``, row i = the
    weights of the k grid nodes at texel i.

    Obtained by resizing the k unit vectors with :func:`resize_maps` itself, so the operator
    fitted in ``fit`` is exactly the one ``apply`` uses. PyTorch's bilinear resize is separable:
    ``resize_maps(M)[i, j] = sum_ab Wy[i, a] M[a, b] Wx[j, b]``.
    """
    eye = torch.eye(k, dtype=dtype, device=device).view(1, k, k, 1)
    return resize_maps(eye, (n, 1)).view(k, n).t().contiguous()


def _bands(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Products of the 1-D weights of neighbouring nodes: ``q0[i,a] = w[i,a]^2`` and
    ``q1[i,a] = w[i,a] w[i,a+1]`` (0 for a = k-1)."""
    q0 = w * w
    q1 = F.pad(w[:, :-1] * w[:, 1:], (0, 1))
    # Bilinear touches at most two adjacent nodes per texel, so these two bands carry every
    # non-zero product w[i,a] w[i,a'] (weights are >= 0: equality <=> nothing further apart).
    if not torch.allclose(q0.sum(1) + 2 * q1.sum(1), w.sum(1) ** 2):
        raise RuntimeError("Rsz touches non-adjacent grid nodes; the banded assembly is invalid")
    return q0, q1


def _tridiag(main: torch.Tensor, upper: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """``[..., n]``, ``[..., n-1]``, ``[..., n-1]`` -> the tridiagonal ``[..., n, n]``."""
    return (torch.diag_embed(main) + torch.diag_embed(upper, offset=1)
            + torch.diag_embed(lower, offset=-1))


def _path_laplacian(k: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Graph Laplacian of a path of k nodes (D^T D for first differences)."""
    lap = torch.zeros(k, k, dtype=dtype, device=device)
    if k > 1:
        idx = torch.arange(k - 1, device=device)
        lap[idx, idx] += 1
        lap[idx + 1, idx + 1] += 1
        lap[idx, idx + 1] = -1
        lap[idx + 1, idx] = -1
    return lap


def block_tridiagonal_solve(diag: torch.Tensor, upper: torch.Tensor,
                            rhs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve the SPD block-tridiagonal system N x = rhs by block Cholesky (exact, no fill-in
    outside the band).

    ``diag`` ``[..., n, m, m]`` are the diagonal blocks N[i, i], ``upper`` ``[..., n-1, m, m]``
    the blocks N[i, i+1] (N[i+1, i] is their transpose), ``rhs`` ``[..., n, m]``.
    Returns ``(x [..., n, m], info [...])``; ``info > 0`` where a block was not positive definite
    (x is then meaningless for that batch entry).
    """
    n = diag.shape[-3]
    chol, coupling, z = [], [None], []
    info = torch.zeros(diag.shape[:-3], dtype=torch.int32, device=diag.device)
    for i in range(n):
        block = diag[..., i, :, :]
        r = rhs[..., i, :, None]
        if i > 0:
            # C_i = N[i, i-1] L_{i-1}^{-T}: the sub-diagonal block of the Cholesky factor.
            c = torch.linalg.solve_triangular(chol[i - 1].mT, upper[..., i - 1, :, :].mT,
                                              upper=True, left=False)
            coupling.append(c)
            block = block - c @ c.mT
            r = r - c @ z[i - 1]
        factor, bad = torch.linalg.cholesky_ex(block)
        info = torch.maximum(info, bad)
        chol.append(factor)
        z.append(torch.linalg.solve_triangular(factor, r, upper=False))
    x = [None] * n
    for i in reversed(range(n)):
        r = z[i] if i == n - 1 else z[i] - coupling[i + 1].mT @ x[i + 1]
        x[i] = torch.linalg.solve_triangular(chol[i].mT, r, upper=True)
    return torch.stack(x, dim=-3).squeeze(-1), info


class GainBias(ColourTransform):
    """Eq. 15-16 of Sect 3.3: per-channel gain and bias maps G, B of k x k (k = 32 in the
    paper), bilinearly resized (:func:`resize_maps`) to the texture and applied as
    ``Rsz(G) * I + Rsz(B)``.

    ``fit`` minimises, per batch item and channel (x = source, y = target, m = mask)::

        (k^2 / (H W)) sum_p m_p (y_p - Rsz(G)_p x_p - Rsz(B)_p)^2
          + smoothness * sum_{neighbouring cells a~b} [(G_a - G_b)^2 + (B_a - B_b)^2]
          + identity_weight * sum_a [(G_a - 1)^2 + B_a^2]

    The data term is scaled by ``k^2 / (H W)`` (a mean over the texels of one grid cell) so
    that each fully visible cell weighs ~1 against the regulariser whatever the texture size.
    It is solved exactly in float64 (normal equations; block-tridiagonal Cholesky over the
    rows of the grid) and returned in the source's dtype.

    Args:
        grid_size: k, the side of the gain / bias grids (the paper uses 32).
        smoothness: weight of the squared differences of 4-neighbouring grid cells (a discrete
            membrane / Laplacian penalty on G and B). Cells that no visible texel touches get
            the harmonic continuation of their neighbours (each is the mean of its neighbours).
            The default 1e-3 is small: a fully visible cell's data weight on B is ~0.4 and on
            G ~0.4 E[x^2] (~0.1 for skin in [0, 1]), so where the texture is seen the fit is
            Eq. 15 unregularised to ~1e-3 relative; the penalty only decides what the data
            cannot, i.e. empty cells and the split between gain and bias in cells where the
            source is nearly flat (in-cell std of x below ~0.03), where it stops G and B from
            taking large opposite values. Must be > 0 unless every cell is seen.
        identity_weight: weight of a pull of every cell towards the identity transform
            (G = 1, B = 0). The default 1e-8 is negligible against data and smoothness (its
            screening length sqrt(smoothness / identity_weight) ~ 300 cells is far beyond the
            grid) and only keeps the normal equations positive definite when the source is
            constant over the visible texels. 0 gives the pure Eq. 15 fit.
    """

    def __init__(self, grid_size: int = 32, smoothness: float = 1e-3,
                 identity_weight: float = 1e-8):
        super().__init__()
        if int(grid_size) != grid_size or grid_size < 1:
            raise ValueError(f"grid_size must be a positive integer, got {grid_size!r}")
        if smoothness < 0 or identity_weight < 0:
            raise ValueError(f"smoothness and identity_weight must be >= 0, got "
                             f"{smoothness!r}, {identity_weight!r}")
        self.grid_size = int(grid_size)
        self.smoothness = float(smoothness)
        self.identity_weight = float(identity_weight)

    def extra_repr(self) -> str:
        return (f"grid_size={self.grid_size}, smoothness={self.smoothness}, "
                f"identity_weight={self.identity_weight}")

    @staticmethod
    def _work_dtype(device: torch.device) -> torch.dtype:
        # Normal equations square the condition number: accumulate and solve in float64
        # (MPS has no float64).
        return torch.float32 if device.type == "mps" else torch.float64

    def fit(self, source: torch.Tensor, target: torch.Tensor,
            mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Eq. 15: ``{"gain": [B,C,k,k], "bias": [B,C,k,k]}`` (source's dtype and device)
        minimising the objective of the class docstring.

        ``source`` (I_phone) and ``target`` (I*) are ``[B,C,H,W]`` of one size; ``mask`` is
        ``[B,1,H,W]`` (or ``[B,C,H,W]``), 1 = visible, fractional values act as weights, or None
        (all visible). Values of unseen texels are ignored (may be NaN). A batch item without
        a visible texel is a ValueError naming it.
        """
        if source.dim() != 4 or source.shape != target.shape:
            raise ValueError(f"source and target must be [B,C,H,W] of one shape, got "
                             f"{tuple(source.shape)} and {tuple(target.shape)}")
        nb, nc, h, w = source.shape
        k, device = self.grid_size, source.device
        wd = self._work_dtype(device)
        if mask is None:
            m = torch.ones(nb, 1, h, w, dtype=wd, device=device)
        else:
            if mask.dim() != 4 or mask.shape[0] != nb or mask.shape[1] not in (1, nc) \
                    or mask.shape[-2:] != (h, w):
                raise ValueError(f"mask must be [B,1,H,W] = [{nb},1,{h},{w}], got "
                                 f"{tuple(mask.shape)}")
            m = mask.to(device=device, dtype=wd)
            if bool((m < 0).any()) or not bool(torch.isfinite(m).all()):
                raise ValueError("mask must be finite and >= 0")
        empty = torch.nonzero(m.flatten(1).sum(1) <= 0).flatten().tolist()
        if empty:
            raise ValueError(f"batch item {empty[0]}: the mask has no visible texel, the "
                             f"colour transform cannot be fitted")
        m = m.expand(nb, nc, h, w)
        visible = m > 0
        zero = torch.zeros((), dtype=wd, device=device)
        x = torch.where(visible, source.to(wd), zero)
        y = torch.where(visible, target.to(wd), zero)

        wy = interpolation_weights(k, h, dtype=wd, device=device)  # [H, k]
        wx = interpolation_weights(k, w, dtype=wd, device=device)  # [W, k]
        qy0, qy1 = _bands(wy)
        qx0, qx1 = _bands(wx)
        scale = k * k / (h * w)

        # A^T M A, in blocks: sum_p f_p w_p w_p^T for f = m x^2 (G-G), m x (G-B), m (B-B),
        # using w_p = wy_i (x) wx_j and the 2-band structure of wy, wx. N4[a,b,a+e,b+d] =
        # M_ed[a,b] = sum_ij f_ij qy_e[i,a] qx_d[j,b]; costs 2 H W k per quantity.
        f = torch.stack([m * x * x, m * x, m], dim=2)  # [B, C, 3, H, W]
        fx0, fx1 = f @ qx0, f @ qx1
        fxm = F.pad(fx1[..., :-1], (1, 0))  # d = -1: qx_-1[j, b] = qx1[j, b-1]
        m00, m01 = qy0.t() @ fx0, qy0.t() @ fx1
        m10, m11, m1m = qy1.t() @ fx0, qy1.t() @ fx1, qy1.t() @ fxm
        # Row-of-grid blocks: diag[a] = N4[a,:,a,:], up[a] = N4[a,:,a+1,:] (k x k, tridiagonal).
        diag = scale * _tridiag(m00, m01[..., :-1], m01[..., :-1])          # [B,C,3,k,k,k]
        up = scale * _tridiag(m10[..., :-1, :], m11[..., :-1, :-1], m1m[..., :-1, 1:])

        # A^T M y: sum_p m y x w_p (gain rows), sum_p m y w_p (bias rows).
        g = torch.stack([m * y * x, m * y], dim=2)
        rhs = scale * (wy.t() @ g @ wx)                                    # [B,C,2,k,k]

        # Regulariser: smoothness * (kron(L1, I) + kron(I, L1)) + identity_weight * I on both
        # G and B; identity_weight pulls G to 1, B to 0.
        lap1 = _path_laplacian(k, dtype=wd, device=device)
        eye = torch.eye(k, dtype=wd, device=device)
        reg = self.smoothness * (lap1.diagonal()[:, None, None] * eye + lap1) \
            + self.identity_weight * eye                                   # [k(a), k, k]
        reg_up = -self.smoothness * eye

        def blocks(gg, gb, bb, r):  # assemble [[GG, GB], [GB, BB]] per grid row
            return torch.cat([torch.cat([gg + r, gb], -1), torch.cat([gb, bb + r], -1)], -2)

        d_blocks = blocks(diag[:, :, 0], diag[:, :, 1], diag[:, :, 2], reg)  # [B,C,k,2k,2k]
        u_blocks = blocks(up[:, :, 0], up[:, :, 1], up[:, :, 2], reg_up)    # [B,C,k-1,2k,2k]
        b_rhs = torch.cat([rhs[:, :, 0] + self.identity_weight, rhs[:, :, 1]], -1)  # [B,C,k,2k]

        sol, info = block_tridiagonal_solve(d_blocks, u_blocks, b_rhs)
        if bool((info > 0).any()):
            bi, ci = (int(v) for v in torch.nonzero(info > 0)[0])
            raise ValueError(
                f"batch item {bi}, channel {ci}: the Eq. 15 normal equations are singular "
                f"(constant source over the visible texels, or unseen cells with smoothness=0); "
                f"use smoothness > 0 and identity_weight > 0")
        out = source.dtype if source.is_floating_point() else torch.get_default_dtype()
        return {"gain": sol[..., :k].to(out).contiguous(),
                "bias": sol[..., k:].to(out).contiguous()}

    def apply(self, params: dict[str, torch.Tensor], texture: torch.Tensor, *,
              clamp: tuple[float, float] | None = None) -> torch.Tensor:
        """Eq. 16: ``Rsz(G) * texture + Rsz(B)``, the maps resized to the texture's own size
        (expression textures may be stored at another resolution than the neutral one).

        ``texture`` is ``[B,C,H',W']``; the maps ``[B,C,k,k]`` or ``[1,C,k,k]`` (one capture's
        transform applied to a batch of its expression textures). The result is NOT clamped:
        a gain > 1 can push texels beyond [0, 1] and it is the caller's decision whether to
        clip; pass ``clamp=(lo, hi)`` to clip the output.
        """
        gain, bias = params["gain"], params["bias"]
        if texture.dim() != 4 or gain.dim() != 4 or gain.shape != bias.shape:
            raise ValueError(f"expected a [B,C,H,W] texture and gain/bias maps [B,C,k,k] of one "
                             f"shape, got {tuple(texture.shape)}, {tuple(gain.shape)}, "
                             f"{tuple(bias.shape)}")
        if gain.shape[1] != texture.shape[1] or gain.shape[0] not in (1, texture.shape[0]):
            raise ValueError(f"maps {tuple(gain.shape)} do not match texture "
                             f"{tuple(texture.shape)} (channels must agree, batch equal or 1)")
        size = texture.shape[-2:]
        gain = resize_maps(gain.to(device=texture.device, dtype=texture.dtype), size)
        bias = resize_maps(bias.to(device=texture.device, dtype=texture.dtype), size)
        out = gain * texture + bias
        return out if clamp is None else out.clamp(clamp[0], clamp[1])
