"""ResShift's residual-shifting Markov chain (Yue et al., NeurIPS 2023), one algorithm.

The paper (Sect 3.2, Eq. 9-12) shifts the residual ``e_0 = y - x_0`` between the high-resolution
image ``x_0`` and the (upsampled) low-resolution image ``y`` over ``T`` steps.

Code names <-> symbols (paper t runs 1..T; code indices ``t`` run 0..T-1, index i = paper t-1):

    sqrt_etas[i]          sqrt(eta_t)      sqrt(eta_1) = min(min_noise_level / kappa, min_noise_level)
                                           sqrt(eta_t) = sqrt(eta_1) * b**beta_t,
                                           b = exp(log(sqrt(eta_T) / sqrt(eta_1)) / (T - 1)),
                                           beta_t = ((t - 1) / (T - 1))**p * (T - 1)
    etas[i]               eta_t
    alphas[i]             alpha_t = eta_t - eta_{t-1}    (alpha_1 = eta_1)
    kappa                 kappa      (noise variance multiplier)
    power                 p          (how fast the shift grows)
    etas_end              sqrt(eta_T)
    add_noise(x0, y, e)   x_t ~ q(x_t | x_0, y) = N(x_0 + eta_t (y - x_0), kappa^2 eta_t I)   (Eq. 9-10)
    posterior_mean_coef1  eta_{t-1} / eta_t        q(x_{t-1} | x_t, x_0) mean =
    posterior_mean_coef2  alpha_t / eta_t            coef1 * x_t + coef2 * x_0                (Eq. 11)
    posterior_variance    kappa^2 eta_{t-1} / eta_t * alpha_t
    prior_sample(y, e)    x_T = y + kappa sqrt(eta_T) e
    scale_input(x, t)     x / sqrt(eta_t kappa^2 + 1)    (the network's input normalisation)
    step(x0_hat, t, x_t)  x_{t-1} = mean(x_t, x0_hat) + sqrt(variance) * e, no noise at t = 1 (Eq. 12)

The network predicts ``x_0`` and is trained with a plain MSE to it. ``set_timesteps(n)`` keeps
``n`` of the ``T`` training steps (always the last one, since sampling starts from the prior at
eta_T) and rebuilds the posterior from the kept etas, as ResShift's respacing does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from lift.spec import Recordable


@dataclass
class ResShiftStepOutput:
    prev_sample: torch.Tensor      # x_{t-1}
    pred_original_sample: torch.Tensor  # the x_0 estimate used for the step


def _as_index(t: torch.Tensor | int, batch: int, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(t, device=device, dtype=torch.long)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(f"timesteps must be a scalar or shape ({batch},), got {tuple(t.shape)}")
    return t


def _per_sample(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``table[t]`` broadcast to ``like`` [B, ...], in ``like``'s dtype."""
    values = table.to(like.device)[t].to(like.dtype)
    return values.view(-1, *([1] * (like.ndim - 1)))


class ResShiftScheduler(Recordable):
    """The eta schedule, forward process, posterior and reverse step of ResShift.

    Args:
        num_train_timesteps: T, the length of the Markov chain (ResShift: 15).
        kappa: kappa, the noise level multiplier (ResShift: 2.0).
        power: p, the exponent of the schedule's growth (ResShift: 0.3).
        min_noise_level: sets sqrt(eta_1) = min(min_noise_level / kappa, min_noise_level) (0.04).
        etas_end: sqrt(eta_T), the shift at the end of the chain (0.99).
    """

    def __init__(
        self,
        num_train_timesteps: int = 15,
        kappa: float = 2.0,
        power: float = 0.3,
        min_noise_level: float = 0.04,
        etas_end: float = 0.99,
    ):
        if num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be >= 2, got {num_train_timesteps}")
        if kappa <= 0 or power <= 0 or min_noise_level <= 0:
            raise ValueError("kappa, power and min_noise_level must be > 0")
        if not 0 < etas_end <= 1:
            raise ValueError(f"etas_end (sqrt(eta_T)) must be in (0, 1], got {etas_end}")
        self.num_train_timesteps = num_train_timesteps
        self.kappa = float(kappa)
        self.power = float(power)
        self.min_noise_level = float(min_noise_level)
        self.etas_end = float(etas_end)

        T = num_train_timesteps
        sqrt_eta_1 = min(min_noise_level / kappa, min_noise_level)
        if sqrt_eta_1 >= etas_end:
            raise ValueError(f"sqrt(eta_1) = {sqrt_eta_1} must be below etas_end = {etas_end}")
        base = math.exp(math.log(etas_end / sqrt_eta_1) / (T - 1))
        t = torch.arange(1, T + 1, dtype=torch.float64)
        beta = ((t - 1) / (T - 1)) ** power * (T - 1)
        self.train_sqrt_etas = sqrt_eta_1 * base**beta  # float64, indexed 0..T-1
        self.train_etas = self.train_sqrt_etas**2
        self.set_timesteps(T)

    # --- the schedule (float64 tables) ----------------------------------------------------

    def set_timesteps(self, num_inference_steps: int | None = None) -> torch.Tensor:
        """Keep ``num_inference_steps`` of the T steps (evenly spaced, T-1 always kept).

        Returns the kept training indices in sampling order (descending). The posterior tables
        are rebuilt from the kept etas, so ``step`` moves between consecutive kept steps.
        """
        T = self.num_train_timesteps
        n = T if num_inference_steps is None else int(num_inference_steps)
        if not 1 <= n <= T:
            raise ValueError(f"num_inference_steps must be in [1, {T}], got {n}")
        kept = torch.linspace(0, T - 1, n, dtype=torch.float64).round().long().unique()
        self.timesteps = kept.flip(0)  # sampling order: T-1 ... first kept index
        self.num_inference_steps = int(kept.numel())
        etas = self.train_etas[kept]
        etas_prev = torch.cat([etas.new_zeros(1), etas[:-1]])
        # Indexed by the *training* index t: entries for steps not kept stay NaN.
        def table(values: torch.Tensor) -> torch.Tensor:
            full = torch.full((T,), float("nan"), dtype=torch.float64)
            full[kept] = values
            return full
        alphas = etas - etas_prev
        self.step_etas_prev = table(etas_prev)
        self.step_alphas = table(alphas)
        self.posterior_mean_coef1 = table(etas_prev / etas)
        self.posterior_mean_coef2 = table(alphas / etas)
        self.posterior_variance = table(self.kappa**2 * etas_prev / etas * alphas)
        return self.timesteps

    @property
    def etas(self) -> torch.Tensor:
        return self.train_etas

    @property
    def sqrt_etas(self) -> torch.Tensor:
        return self.train_sqrt_etas

    @property
    def alphas(self) -> torch.Tensor:
        """alpha_t = eta_t - eta_{t-1} of the training chain (alpha_1 = eta_1)."""
        e = self.train_etas
        return torch.cat([e[:1], e[1:] - e[:-1]])

    # --- forward process, prior, input scaling ----------------------------------------------

    def add_noise(
        self, x0: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | int
    ) -> torch.Tensor:
        """A sample of q(x_t | x_0, y) = x_0 + eta_t (y - x_0) + kappa sqrt(eta_t) noise."""
        if not x0.shape == y.shape == noise.shape:
            raise ValueError(f"x0 {tuple(x0.shape)}, y {tuple(y.shape)} and noise "
                             f"{tuple(noise.shape)} must have one shape")
        t = _as_index(t, x0.shape[0], x0.device)
        eta = _per_sample(self.train_etas, t, x0)
        sqrt_eta = _per_sample(self.train_sqrt_etas, t, x0)
        return x0 + eta * (y - x0) + self.kappa * sqrt_eta * noise

    def prior_sample(self, y: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_T = y + kappa sqrt(eta_T) noise: the start of the reverse process."""
        if y.shape != noise.shape:
            raise ValueError(f"y {tuple(y.shape)} and noise {tuple(noise.shape)} differ")
        return y + self.kappa * float(self.train_sqrt_etas[-1]) * noise

    def scale_input(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """x_t / sqrt(eta_t kappa^2 + 1): keeps the network input near unit variance."""
        t = _as_index(t, x_t.shape[0], x_t.device)
        return x_t / torch.sqrt(_per_sample(self.train_etas, t, x_t) * self.kappa**2 + 1)

    def sample_timesteps(
        self, batch: int, device: torch.device | str = "cpu",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Uniform training indices in [0, T)."""
        t = torch.randint(0, self.num_train_timesteps, (batch,), generator=generator)
        return t.to(device)

    # --- reverse process --------------------------------------------------------------------

    def posterior_mean_variance(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x_0) between consecutive kept steps (Eq. 11)."""
        t = _as_index(t, x_t.shape[0], x_t.device)
        c1 = _per_sample(self.posterior_mean_coef1, t, x_t)
        c2 = _per_sample(self.posterior_mean_coef2, t, x_t)
        if torch.isnan(c1).any():
            raise ValueError(f"timestep(s) {t.tolist()} are not among the kept timesteps "
                             f"{self.timesteps.tolist()} (call set_timesteps)")
        return c1 * x_t + c2 * x0, _per_sample(self.posterior_variance, t, x_t)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> ResShiftStepOutput:
        """x_{t-1} from x_t (``sample``) and the network's x_0 estimate (``model_output``).

        ``noise`` (same shape as ``sample``) is used when given, so tiled sampling can share one
        full-size draw; otherwise it is drawn from ``generator``. The last step adds no noise.
        """
        if model_output.shape != sample.shape:
            raise ValueError(f"model_output {tuple(model_output.shape)} and sample "
                             f"{tuple(sample.shape)} differ")
        mean, variance = self.posterior_mean_variance(model_output, sample, int(timestep))
        if int(timestep) == int(self.timesteps[-1]):
            return ResShiftStepOutput(mean, model_output)
        if noise is None:
            device = sample.device if generator is None else generator.device
            noise = torch.randn(sample.shape, generator=generator, dtype=sample.dtype,
                                device=device).to(sample.device)
        elif noise.shape != sample.shape:
            raise ValueError(f"noise {tuple(noise.shape)} and sample {tuple(sample.shape)} differ")
        return ResShiftStepOutput(mean + torch.sqrt(variance) * noise, model_output)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(T={self.num_train_timesteps}, kappa={self.kappa}, "
                f"power={self.power}, min_noise_level={self.min_noise_level}, "
                f"etas_end={self.etas_end}, steps={self.num_inference_steps})")
