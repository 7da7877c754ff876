"""ResShift schedule, forward process and posterior against a hand computation (Eq. 9-12)."""

from __future__ import annotations

import math

import pytest
import torch

from lift_resshift.scheduler import ResShiftScheduler


def hand_sqrt_etas(T=15, kappa=2.0, p=0.3, min_noise=0.04, end=0.99):
    """The formulas of ResShift's schedule, written out with Python floats."""
    s1 = min(min_noise / kappa, min_noise)
    b = math.exp(math.log(end / s1) / (T - 1))
    return [s1 * b ** (((t - 1) / (T - 1)) ** p * (T - 1)) for t in range(1, T + 1)]


@pytest.mark.parametrize("T,kappa,p", [(15, 2.0, 0.3), (4, 1.0, 1.0), (50, 0.5, 0.8)])
def test_schedule_matches_hand_computation(T, kappa, p):
    sched = ResShiftScheduler(num_train_timesteps=T, kappa=kappa, power=p)
    ref = hand_sqrt_etas(T, kappa, p)
    assert torch.allclose(sched.sqrt_etas, torch.tensor(ref, dtype=torch.float64), atol=1e-6)
    assert sched.sqrt_etas[0].item() == pytest.approx(min(0.04 / kappa, 0.04), abs=1e-12)
    assert sched.sqrt_etas[-1].item() == pytest.approx(0.99, abs=1e-12)
    assert bool((sched.etas[1:] > sched.etas[:-1]).all())  # the shift grows monotonically
    etas = [s * s for s in ref]
    alphas = [etas[0]] + [etas[i] - etas[i - 1] for i in range(1, T)]
    assert torch.allclose(sched.alphas, torch.tensor(alphas, dtype=torch.float64), atol=1e-6)


def test_default_schedule_values():
    # T = 15, kappa = 2, p = 0.3: sqrt(eta_1) = 0.02, sqrt(eta_15) = 0.99.
    sched = ResShiftScheduler()
    s = sched.sqrt_etas
    assert s[0].item() == pytest.approx(0.02)
    b = math.exp(math.log(0.99 / 0.02) / 14)
    assert s[1].item() == pytest.approx(0.02 * b ** ((1 / 14) ** 0.3 * 14), abs=1e-9)


def test_posterior_matches_hand_computation():
    sched = ResShiftScheduler()
    etas = [s * s for s in hand_sqrt_etas()]
    kappa = 2.0
    g = torch.Generator().manual_seed(0)
    x0, xt = torch.randn(2, 1, 3, 3, 3, generator=g, dtype=torch.float64)
    for t in range(15):
        eta_prev = etas[t - 1] if t > 0 else 0.0
        alpha = etas[t] - eta_prev
        mean, var = sched.posterior_mean_variance(x0, xt, t)
        ref_mean = (eta_prev / etas[t]) * xt + (alpha / etas[t]) * x0
        assert torch.allclose(mean, ref_mean, atol=1e-6)
        assert var.flatten()[0].item() == pytest.approx(kappa**2 * eta_prev / etas[t] * alpha,
                                                         abs=1e-6)
    # t = 1 (index 0): the posterior is exactly x_0, no variance.
    mean, var = sched.posterior_mean_variance(x0, xt, 0)
    assert torch.equal(mean, x0) and var.abs().max().item() == 0.0


def test_posterior_is_consistent_with_marginals():
    """Marginalising x_t in q(x_{t-1}|x_t,x_0) q(x_t|x_0,y) gives q(x_{t-1}|x_0,y) (Eq. 9-11)."""
    sched = ResShiftScheduler()
    e, k = sched.etas, sched.kappa
    for t in range(1, 15):
        c1 = sched.posterior_mean_coef1[t]
        c2 = sched.posterior_mean_coef2[t]
        # means in the (x_0, y) basis: x_t = (1-eta_t) x_0 + eta_t y
        mean_x0 = c1 * (1 - e[t]) + c2
        mean_y = c1 * e[t]
        assert mean_x0.item() == pytest.approx(1 - e[t - 1].item(), abs=1e-9)
        assert mean_y.item() == pytest.approx(e[t - 1].item(), abs=1e-9)
        var = c1**2 * k**2 * e[t] + sched.posterior_variance[t]
        assert var.item() == pytest.approx(k**2 * e[t - 1].item(), abs=1e-9)


def test_add_noise_prior_and_scale_input():
    sched = ResShiftScheduler()
    g = torch.Generator().manual_seed(1)
    x0, y, eps = torch.randn(3, 4, 3, 8, 8, generator=g)
    t = torch.tensor([0, 5, 14, 7])
    xt = sched.add_noise(x0, y, eps, t)
    for i, ti in enumerate(t.tolist()):
        eta = sched.etas[ti].item()
        ref = x0[i] + eta * (y[i] - x0[i]) + 2.0 * math.sqrt(eta) * eps[i]
        assert torch.allclose(xt[i], ref, atol=1e-6)
        ref_scaled = xt[i] / math.sqrt(eta * 4.0 + 1)
        assert torch.allclose(sched.scale_input(xt, t)[i], ref_scaled, atol=1e-6)
    assert torch.allclose(sched.prior_sample(y, eps), y + 2.0 * 0.99 * eps, atol=1e-6)
    # at t = T the forward marginal is the prior up to the (1 - eta_T) x_0 term
    last = sched.add_noise(x0, y, eps, 14)
    assert torch.allclose(last - sched.prior_sample(y, eps), (1 - 0.99**2) * (x0 - y), atol=1e-5)


def test_step_and_respacing():
    sched = ResShiftScheduler()
    assert sched.timesteps.tolist() == list(range(14, -1, -1))
    g = torch.Generator().manual_seed(2)
    x0, xt, noise = torch.randn(3, 2, 3, 4, 4, generator=g)
    out = sched.step(x0, 5, xt, noise=noise)
    mean, var = sched.posterior_mean_variance(x0, xt, 5)
    assert torch.allclose(out.prev_sample, mean + var.sqrt() * noise)
    # the last step returns the posterior mean, which at t = 1 is x_0 itself
    assert torch.allclose(sched.step(x0, 0, xt).prev_sample, x0)
    # respacing keeps the first and last index and uses consecutive kept etas
    kept = sched.set_timesteps(4)
    assert kept[0].item() == 14 and kept[-1].item() == 0 and len(kept) == 4
    t, t_prev = kept[0].item(), kept[1].item()
    e = sched.etas
    assert sched.posterior_mean_coef1[t].item() == pytest.approx((e[t_prev] / e[t]).item())
    with pytest.raises(ValueError, match="not among the kept"):
        sched.step(x0, 13, xt)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        ResShiftScheduler(num_train_timesteps=1)
    with pytest.raises(ValueError):
        ResShiftScheduler(etas_end=1.5)
    sched = ResShiftScheduler()
    with pytest.raises(ValueError):
        sched.set_timesteps(16)
    with pytest.raises(ValueError):
        sched.add_noise(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5), torch.zeros(1, 3, 4, 4), 0)
