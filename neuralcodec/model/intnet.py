"""The integer hyper-synthesis: z (and the previous frame's latent) -> Gaussian scale indexes and means.

The entropy decoder's probabilities come from here, so this network must give the same integers on every
machine and thread count (Ballé et al., "Integer networks for data compression", 2019). Weights are multiples
of 2^-weight_bits, activations multiples of 2^-act_bits clamped to a bounded range, and every layer's output is
rescaled by a rounding division by a power of two. The exact path (`exact`) runs on float64 tensors holding
those integers: every product and partial sum is an integer far below 2^53, so any summation order gives the
same result. Training runs the same arithmetic in float32 with straight-through rounding (`forward`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig

W_MAX = 8.0       # |weight| bound (real units); with act_max <= 1024 and <= 4608 terms the sums stay < 2^53
B_MAX = 1024.0    # |bias| bound (real units)


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round half up in the forward pass, identity gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


def ste_clamp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Clamp in the forward pass, identity gradient (so saturated outputs can still learn back)."""
    return x + (x.clamp(lo, hi) - x).detach()


class IntConv(nn.Module):
    """A convolution on integer grids. `relu`: clamp outputs to [0, act_max) on the activation grid."""

    def __init__(self, cin: int, cout: int, k: int, cfg: ModelConfig, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2)
        self.wb, self.ab, self.relu = cfg.weight_bits, cfg.act_bits, relu
        self.act_max = float(cfg.act_max)

    def _qweight(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = ste_round(self.conv.weight.clamp(-W_MAX, W_MAX) * 2 ** self.wb) / 2 ** self.wb
        b = ste_round(self.conv.bias.clamp(-B_MAX, B_MAX) * 2 ** (self.wb + self.ab)) / 2 ** (self.wb + self.ab)
        return w, b

    def _activate(self, acc: torch.Tensor) -> torch.Tensor:
        out = ste_round(acc * 2 ** self.ab) / 2 ** self.ab
        return out.clamp(0, self.act_max - 2 ** -self.ab) if self.relu else out

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """Training path (float32, straight-through): input and output in real units."""
        w, b = self._qweight()
        acc = F.conv2d(a, w, b, padding=self.conv.padding)
        return self._activate(acc) if self.relu else acc

    @torch.no_grad()
    def integer_params(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight * 2^wb, bias * 2^(wb+ab)) as float64 integers."""
        w = torch.floor(self.conv.weight.double().clamp(-W_MAX, W_MAX) * 2 ** self.wb + 0.5)
        b = torch.floor(self.conv.bias.double().clamp(-B_MAX, B_MAX) * 2 ** (self.wb + self.ab) + 0.5)
        return w, b

    @torch.no_grad()
    def exact(self, a_int: torch.Tensor) -> torch.Tensor:
        """Exact path: a_int = activations * 2^ab (float64 integers). Returns activations * 2^ab for a ReLU
        layer, else the raw accumulator (real value * 2^(wb+ab))."""
        w, b = self.integer_params()
        acc = F.conv2d(a_int, w, b, padding=self.conv.padding)
        if not self.relu:
            return acc
        out = torch.floor((acc + 2 ** (self.wb - 1)) / 2 ** self.wb)
        return out.clamp(0, self.act_max * 2 ** self.ab - 1)


class IntHyperSynthesis(nn.Module):
    """Integer z (B, hyper_dim, hz, wz), quality index, [previous y_hat] -> (scale index, mean) per element of y.

    z at 1/64 -> 3x3 conv, pixel shuffle -> 1/32 -> 3x3 conv, pixel shuffle -> 1/16 [+ previous latent]
    -> 1x1 -> 1x1 -> 2 * latent_dim outputs (scale-index logits, means).
    """

    def __init__(self, cfg: ModelConfig, with_prev: bool):
        super().__init__()
        c, m = cfg.hyper_channels, cfg.latent_dim
        self.cfg, self.with_prev = cfg, with_prev
        self.l1 = IntConv(cfg.hyper_dim + 1, 4 * c, 3, cfg)
        self.l2 = IntConv(c, 4 * c, 3, cfg)
        self.l3 = IntConv(c + (m if with_prev else 0), 2 * c, 1, cfg)
        self.l4 = IntConv(2 * c, 2 * m, 1, cfg, relu=False)
        with torch.no_grad():  # start at mid-table scales and zero means
            self.l4.conv.weight.mul_(0.1)
            self.l4.conv.bias.zero_()
            self.l4.conv.bias[:m] = cfg.scale_levels / 2

    def _inputs(self, z: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        a = float(self.cfg.act_max)
        qplane = q.to(z.dtype).view(-1, 1, 1, 1).expand(z.shape[0], 1, *z.shape[2:])
        return torch.cat([z.clamp(-a, a), qplane], 1)

    def _prev(self, prev: torch.Tensor, shape) -> torch.Tensor:
        a = float(self.cfg.act_max)
        return prev[..., :shape[-2], :shape[-1]].clamp(-a, a - 1)

    def _outputs(self, h: torch.Tensor, shape) -> tuple[torch.Tensor, torch.Tensor]:
        h = h[..., :shape[-2], :shape[-1]]
        m = self.cfg.latent_dim
        return h[:, :m], h[:, m:]

    def forward(self, z: torch.Tensor, q: torch.Tensor, shape: tuple[int, int],
                prev: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Training path: (continuous scale index with straight-through rounding, mean on its grid)."""
        h = F.pixel_shuffle(self.l1(self._inputs(z, q)), 2)
        h = F.pixel_shuffle(self.l2(h), 2)
        h = h[..., :shape[0], :shape[1]]
        if self.with_prev:
            h = torch.cat([h, self._prev(prev, shape)], 1)
        s, mu = self._outputs(self.l4(self.l3(h)), shape)
        cfg = self.cfg
        s = ste_clamp(ste_round(s), 0, cfg.scale_levels - 1)
        lim = 1024.0
        mu = ste_clamp(ste_round(mu * cfg.mean_steps) / cfg.mean_steps, -lim, lim)
        return s, mu

    @torch.no_grad()
    def exact(self, z: torch.Tensor, q: torch.Tensor, shape: tuple[int, int],
              prev: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Exact path: (scale index int64, mean as float32 multiples of 1/mean_steps); the same on every machine."""
        cfg = self.cfg
        one = 2.0 ** cfg.act_bits
        h = self._inputs(z.double(), q.double()) * one
        h = F.pixel_shuffle(self.l1.exact(h), 2)
        h = F.pixel_shuffle(self.l2.exact(h), 2)
        h = h[..., :shape[0], :shape[1]]
        if self.with_prev:
            h = torch.cat([h, self._prev(prev.double(), shape) * one], 1)
        acc_s, acc_m = self._outputs(self.l4.exact(self.l3.exact(h)), shape)
        unit = 2.0 ** (cfg.weight_bits + cfg.act_bits)
        idx = torch.floor((acc_s + unit / 2) / unit).clamp(0, cfg.scale_levels - 1).long()
        lim = 1024 * cfg.mean_steps
        mean_int = torch.floor((acc_m * cfg.mean_steps + unit / 2) / unit).clamp(-lim, lim)
        return idx, (mean_int / cfg.mean_steps).float()


def scale_table(cfg: ModelConfig) -> torch.Tensor:
    """The Gaussian scales that scale indexes select (float64, log-spaced)."""
    return torch.exp(torch.linspace(math.log(cfg.scale_min), math.log(cfg.scale_max), cfg.scale_levels,
                                    dtype=torch.float64))
