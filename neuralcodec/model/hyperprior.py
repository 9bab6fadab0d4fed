"""The learned entropy model of model v2: a side latent z under a factorized prior, and an integer-exact
hyper-synthesis that turns z (and, for P-frames, the previous frame's integer latent) into a Gaussian scale index
for every element of the integer latent y.

The entropy decoder's probabilities come from the scale indexes, so they must be the same integers on every
machine and thread count (Balle et al., "Integer networks for data compression", 2019). Weights are multiples of
2^-W_BITS (|w| <= W_MAX), activations multiples of 2^-A_BITS clamped to [0, A_MAX), and every ReLU layer's output
is requantized by a rounding division by a power of two. The exact path (`*_exact`) runs on float64 tensors that
hold those integers: every product and partial sum is an integer below 2^43, far below 2^53, so any summation
order (threads, BLAS, channels_last) gives the same result, and float64 convolutions on CPU are plain
multiply-adds (im2col + GEMM, no Winograd or FFT). Training runs the same arithmetic in float32 with
straight-through rounding (`forward`), autocast off.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

W_BITS, A_BITS = 12, 8      # weight and activation grids: 2^-12 and 2^-8
W_MAX, A_MAX = 8.0, 256.0   # |weight| and activation bounds (real units)
B_MAX = 1024.0              # |bias| bound (real units)
Z_MAX = 255                 # z enters the hyper-synthesis clamped to +-Z_MAX (the coder codes any integer)
PREV_MAX = 15               # the previous frame's integers enter clamped to +-PREV_MAX
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64   # the scale table: log-spaced Gaussian scales
LIKELIHOOD_MIN = 1e-9


def scale_table() -> torch.Tensor:
    """The Gaussian scales (float64, SCALE_LEVELS log-spaced from SCALE_MIN to SCALE_MAX) that indexes select."""
    return torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS, dtype=torch.float64))


SCALE_STEP = math.log(SCALE_MAX / SCALE_MIN) / (SCALE_LEVELS - 1)   # log-scale units per index


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round half up in the forward pass, identity gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


def gaussian_likelihood(v: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Probability mass of [v - 1/2, v + 1/2] under a zero-mean Gaussian of scale sigma (>= SCALE_MIN)."""
    sigma = sigma.clamp(min=SCALE_MIN)
    v = v.abs()
    c = lambda t: 0.5 * torch.erfc(-t * (2 ** -0.5))  # noqa: E731
    return (c((0.5 - v) / sigma) - c((-0.5 - v) / sigma)).clamp(min=LIKELIHOOD_MIN)


class FactorizedPrior(nn.Module):
    """A learned density per channel of z (Balle et al. 2018's non-parametric prior: a monotone cumulative of
    filters 1-3-3-3-3-1); `likelihood(z)` is the mass of [z - 1/2, z + 1/2]. Its integer tables are frozen at export
    (coding.entropy); only training evaluates it."""

    FILTERS = (3, 3, 3, 3)

    def __init__(self, channels: int, init_scale: float = 10.0):
        super().__init__()
        dims = (1,) + self.FILTERS + (1,)
        scale = init_scale ** (1 / (len(self.FILTERS) + 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for i in range(len(self.FILTERS) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(self.FILTERS):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cumulative(self, v: torch.Tensor) -> torch.Tensor:
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            v = torch.matmul(F.softplus(m), v) + b
            if i < len(self.factors):
                v = v + torch.tanh(self.factors[i]) * torch.tanh(v)
        return v

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, C, h, w) or (C, N) values -> their probability masses, same shape."""
        shape = z.shape
        v = (z.transpose(0, 1) if z.dim() == 4 else z).reshape(shape[1] if z.dim() == 4 else shape[0], 1, -1)
        lower, upper = self._logits_cumulative(v - 0.5), self._logits_cumulative(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs().clamp(min=LIKELIHOOD_MIN)
        if z.dim() == 4:
            return lik.reshape(shape[1], shape[0], *shape[2:]).transpose(0, 1)
        return lik.reshape(shape)


class IntLayer(nn.Module):
    """A convolution (or transposed convolution) on the integer grids; its output is the accumulator."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d):
        super().__init__()
        self.conv = conv

    def _conv(self, a, w, b):
        c = self.conv
        if isinstance(c, nn.ConvTranspose2d):
            return F.conv_transpose2d(a, w, b, c.stride, c.padding, c.output_padding)
        return F.conv2d(a, w, b, c.stride, c.padding)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """Training path (float32, straight-through): activations in real units -> accumulator in real units."""
        w = ste_round(self.conv.weight.clamp(-W_MAX, W_MAX) * 2 ** W_BITS) / 2 ** W_BITS
        b = ste_round(self.conv.bias.clamp(-B_MAX, B_MAX) * 2 ** (W_BITS + A_BITS)) / 2 ** (W_BITS + A_BITS)
        return self._conv(a, w, b)

    @torch.no_grad()
    def exact(self, a_int: torch.Tensor) -> torch.Tensor:
        """Exact path: activations x 2^A_BITS (float64 integers) -> accumulator x 2^(W_BITS + A_BITS)."""
        w = torch.floor(self.conv.weight.double().clamp(-W_MAX, W_MAX) * 2 ** W_BITS + 0.5)
        b = torch.floor(self.conv.bias.double().clamp(-B_MAX, B_MAX) * 2 ** (W_BITS + A_BITS) + 0.5)
        return self._conv(a_int.contiguous(), w, b)


def relu_q(acc: torch.Tensor) -> torch.Tensor:
    """Training path: an accumulator (real units) -> ReLU activation on the grid, clamped below A_MAX. Only the
    rounding is straight-through: the clamp keeps its true gradient (zero outside), so this is a ReLU in the
    backward pass too (a straight-through clamp let gradients through negative pre-activations, and training
    from the transfer weights diverged after about 400 steps, twice)."""
    return ste_round(acc * 2 ** A_BITS).clamp(0, A_MAX * 2 ** A_BITS - 1) / 2 ** A_BITS


def relu_exact(acc_int: torch.Tensor) -> torch.Tensor:
    """Exact path: accumulator x 2^(W_BITS + A_BITS) -> activation x 2^A_BITS, as relu_q rounds it."""
    return torch.floor((acc_int + 2 ** (W_BITS - 1)) / 2 ** W_BITS).clamp(0, A_MAX * 2 ** A_BITS - 1)


class HyperPrior(nn.Module):
    """The side information of one frame type.

        y (scaled latent, B x D x h x w) ──► analysis (float, encoder only) ──► z (B x Z x h/4 x w/4) ──► round
        round(z) ──► hs0 ─relu─► hs1 ──(+ ctx1 ◄─relu─ ctx0 ◄── previous frame's integer latent, P-frames)
                 ──relu──► out ──► scale index per element of y, in 0 .. SCALE_LEVELS - 1

    `forward` (training) gives the index with straight-through rounding and the likelihoods of z;
    `index_exact` gives the int64 indexes the coder uses."""

    def __init__(self, latent_dim: int, channels: int, side_dim: int, with_prev: bool):
        super().__init__()
        c = channels
        self.analysis = nn.Sequential(nn.Conv2d(latent_dim, c, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(c, c, 5, 2, 2), nn.ReLU(), nn.Conv2d(c, side_dim, 5, 2, 2))
        self.prior = FactorizedPrior(side_dim)
        self.hs0 = IntLayer(nn.ConvTranspose2d(side_dim, c, 5, 2, 2, 1))
        self.hs1 = IntLayer(nn.ConvTranspose2d(c, c, 5, 2, 2, 1))
        self.with_prev = with_prev
        if with_prev:
            self.ctx0 = IntLayer(nn.Conv2d(latent_dim, c, 3, padding=1))
            self.ctx1 = IntLayer(nn.Conv2d(c, c, 3, padding=1))
        self.out = IntLayer(nn.Conv2d(c, latent_dim, 3, padding=1))
        with torch.no_grad():   # start near the middle of the scale table
            self.out.conv.weight.mul_(0.1)
            self.out.conv.bias.fill_(SCALE_LEVELS / 3)

    def side_latent(self, y: torch.Tensor) -> torch.Tensor:
        """The encoder's z (float) of a scaled latent y whose height and width are multiples of 4."""
        return self.analysis(y)

    def _check(self, prev: torch.Tensor | None) -> None:
        if self.with_prev != (prev is not None):
            raise ValueError("the P-frame hyperprior needs the previous frame's integers, the I-frame one none")

    def forward(self, z_hat: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        """Training path: integer-valued z_hat -> scale index (float, straight-through rounded and clamped)."""
        self._check(prev)
        with torch.autocast(z_hat.device.type, enabled=False):
            h = self.hs1(relu_q(self.hs0(z_hat.float().clamp(-Z_MAX, Z_MAX))))
            if prev is not None:
                h = h + self.ctx1(relu_q(self.ctx0(prev.float().clamp(-PREV_MAX, PREV_MAX))))
            # the clamp with its true gradient, as the float model's sigma floor: no drift below the table
            return ste_round(self.out(relu_q(h))).clamp(0, SCALE_LEVELS - 1)

    @torch.no_grad()
    def index_exact(self, z: torch.Tensor, prev: torch.Tensor | None = None) -> torch.Tensor:
        """Exact path: integer z (and previous integers) -> int64 scale indexes, the same on every machine."""
        self._check(prev)
        one = 2.0 ** A_BITS
        h = self.hs1.exact(relu_exact(self.hs0.exact(z.double().clamp(-Z_MAX, Z_MAX) * one)))
        if prev is not None:
            h = h + self.ctx1.exact(relu_exact(self.ctx0.exact(prev.double().clamp(-PREV_MAX, PREV_MAX) * one)))
        acc = self.out.exact(relu_exact(h))
        unit = 2.0 ** (W_BITS + A_BITS)
        return torch.floor((acc + unit / 2) / unit).clamp(0, SCALE_LEVELS - 1).long()

    def likelihoods(self, y: torch.Tensor, prev: torch.Tensor | None, noise: bool) \
            -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training/evaluation: (scale index, likelihoods of y's elements, likelihoods of z's) for a scaled latent
        y. With noise (training) the rate sees y + U(-1/2, 1/2) and z + U; else the rounded values (rounded
        straight through: the encoder's latent search differentiates the rate of the integers it would send)."""
        z = self.side_latent(y).float()
        z_hat = ste_round(z)
        idx = self(z_hat, prev)
        sigma = torch.exp(math.log(SCALE_MIN) + SCALE_STEP * idx)
        with torch.autocast(y.device.type, enabled=False):
            if noise:
                y_r = y.float() + torch.empty_like(y, dtype=torch.float32).uniform_(-0.5, 0.5)
                z_r = z + torch.empty_like(z).uniform_(-0.5, 0.5)
            else:
                y_r, z_r = ste_round(y.float()), z_hat
            return idx, gaussian_likelihood(y_r, sigma), self.prior.likelihood(z_r)
