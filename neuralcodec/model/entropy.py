"""Probability models of the integer latents (pure torch): a factorized prior for z, Gaussians for y.

These give the rate term of the training loss; the coder uses integer CDF tables frozen from the very same
distributions at export (neuralcodec/coding/tables.py), indexed by integers only.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOOD_MIN = 1e-9


def _std_cumulative(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (2 ** -0.5))


def gaussian_likelihood(y: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """P(round(y)) for y ~ N(mean, scale) discretized on unit bins around mean (tails computed stably)."""
    v = (y - mean).abs()
    lik = _std_cumulative((0.5 - v) / scale) - _std_cumulative((-0.5 - v) / scale)
    return lik.clamp_min(LIKELIHOOD_MIN)


def gaussian_pmf(scale: float, half: int) -> np.ndarray:
    """Probabilities of the integers -half..half under N(0, scale) on unit bins (float64)."""
    k = np.arange(-half, half + 1, dtype=np.float64)
    up = 0.5 * np.array([math.erfc(-(x + 0.5) / scale / math.sqrt(2)) for x in k])
    lo = 0.5 * np.array([math.erfc(-(x - 0.5) / scale / math.sqrt(2)) for x in k])
    return np.maximum(up - lo, 1e-12)


def gaussian_half_width(scale: float, y_max: int) -> int:
    """Symbols coded directly for a scale (beyond: the escape); wide enough that escapes are ~never needed."""
    return int(min(y_max, max(2, math.ceil(8 * scale) + 1)))


class FactorizedPrior(nn.Module):
    """Ballé et al. (2018) non-parametric density per channel, for the side latent z."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cumulative(self, x: torch.Tensor) -> torch.Tensor:
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(m), x) + b
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """P(bin of width 1 around each value) for z (B, C, H, W)."""
        b, c, h, w = z.shape
        v = z.transpose(0, 1).reshape(c, 1, -1)
        lower = self._logits_cumulative(v - 0.5)
        upper = self._logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return lik.reshape(c, b, h, w).transpose(0, 1).clamp_min(LIKELIHOOD_MIN)

    @torch.no_grad()
    def pmf(self, z_max: int) -> np.ndarray:
        """(C, 2 z_max + 1) probabilities of the integers -z_max..z_max (float64), for the frozen tables."""
        c = self.matrices[0].shape[0]
        k = torch.arange(-z_max, z_max + 1, dtype=torch.float32).view(1, 1, -1, 1).expand(1, c, -1, 1)
        return self.likelihood(k.contiguous())[0, :, :, 0].double().numpy()
