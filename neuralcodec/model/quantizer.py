"""Residual vector quantizer: EMA codebooks with k-means init, dead-code replacement and quantizer dropout."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(t)
    return t


def _broadcast(t: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.broadcast(t, 0)
    return t


class Codebook(nn.Module):
    """One codebook of `size` vectors of dimension `dim`; code 0 is fixed to the zero vector."""

    def __init__(self, size: int, dim: int, decay: float = 0.99, dead_threshold: float = 1.0, eps: float = 1e-5):
        super().__init__()
        self.size, self.dim, self.decay, self.dead_threshold, self.eps = size, dim, decay, dead_threshold, eps
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed_sum", torch.zeros(size, dim))
        self.register_buffer("initted", torch.zeros((), dtype=torch.bool))

    def distances(self, x: torch.Tensor) -> torch.Tensor:
        """Squared distance (N, size) of each row of x (N, dim) to every code."""
        e = self.embed
        return x.pow(2).sum(1, keepdim=True) - 2 * x @ e.t() + e.pow(2).sum(1)[None]

    def quantize(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest code index for each row of x (N, dim)."""
        return self.distances(x).argmin(1)

    def dequantize(self, idx: torch.Tensor) -> torch.Tensor:
        return F.embedding(idx, self.embed)

    @torch.no_grad()
    def init_kmeans(self, x: torch.Tensor, iters: int = 15, generator: torch.Generator | None = None) -> None:
        """Lloyd's k-means on sample vectors x (N, dim); code 0 stays the zero vector."""
        x = x.float()
        k = self.size - 1
        pick = torch.randperm(x.shape[0], generator=generator)[:k]
        centers = x[pick].clone()
        if centers.shape[0] < k:  # fewer samples than codes: pad with jittered copies
            extra = centers[torch.randint(0, centers.shape[0], (k - centers.shape[0],), generator=generator)]
            centers = torch.cat([centers, extra + 1e-3 * torch.randn(extra.shape, generator=generator)])
        for _ in range(iters):
            full = torch.cat([torch.zeros(1, self.dim), centers])
            idx = torch.cdist(x, full).argmin(1)
            counts = torch.bincount(idx, minlength=self.size).float()
            sums = torch.zeros(self.size, self.dim).index_add_(0, idx, x)
            moved = counts[1:] > 0
            centers[moved] = sums[1:][moved] / counts[1:][moved, None]
            dead = ~moved
            if dead.any():
                centers[dead] = x[torch.randint(0, x.shape[0], (int(dead.sum()),), generator=generator)]
        full = torch.cat([torch.zeros(1, self.dim), centers])
        counts = torch.bincount(torch.cdist(x, full).argmin(1), minlength=self.size).float().clamp(min=1.0)
        self.embed.copy_(_broadcast(full))
        self.cluster_size.copy_(_broadcast(counts))
        self.embed_sum.copy_(self.embed * self.cluster_size[:, None])
        self.initted.fill_(True)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, idx: torch.Tensor) -> None:
        """Move codes towards the mean of the vectors assigned to them; revive unused codes."""
        counts = _all_reduce(torch.bincount(idx, minlength=self.size).float())
        sums = _all_reduce(torch.zeros_like(self.embed_sum).index_add_(0, idx, x.float()))
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.size * self.eps) * n
        self.embed.copy_(self.embed_sum / smoothed[:, None])
        self.embed[0].zero_()
        dead = self.cluster_size < self.dead_threshold
        dead[0] = False
        n_dead = int(dead.sum())
        if n_dead and x.shape[0]:
            samples = x[torch.randint(0, x.shape[0], (n_dead,), device=x.device)].float()
            self.embed[dead] = samples
            self.cluster_size[dead] = self.dead_threshold
            self.embed_sum[dead] = samples * self.dead_threshold
            _broadcast(self.embed)
            _broadcast(self.cluster_size)
            _broadcast(self.embed_sum)


@dataclass
class QuantizerOutput:
    """What a residual VQ forward pass returns."""

    quantized: torch.Tensor          # (B, D, h, w), straight-through
    codes: torch.Tensor              # (B, S, h, w) int64, all stages
    commit_loss: torch.Tensor        # scalar
    metrics: dict[str, float] = field(default_factory=dict)


class ResidualVQ(nn.Module):
    """A stack of codebooks, each quantizing what the previous ones left."""

    def __init__(self, num_stages: int, size: int, dim: int, decay: float = 0.99, dead_threshold: float = 1.0):
        super().__init__()
        self.stages = nn.ModuleList(Codebook(size, dim, decay, dead_threshold) for _ in range(num_stages))

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @torch.no_grad()
    def init_kmeans(self, z: torch.Tensor, iters: int = 15, generator: torch.Generator | None = None) -> list[float]:
        """Initialise stage by stage on the residuals each stage actually sees; returns residual energy per stage."""
        x = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]).float()
        energies = []
        for cb in self.stages:
            cb.init_kmeans(x, iters, generator)
            x = x - cb.dequantize(cb.quantize(x))
            energies.append(float(x.pow(2).mean()))
        return energies

    def forward(self, z: torch.Tensor, n_stages: torch.Tensor | int | None = None, lam: float = 0.0) -> QuantizerOutput:
        """Quantize z (B, D, h, w) with all stages, keep the first n_stages per sample (quantizer dropout).

        In eval mode this is decode(encode(z)), with encode's rate-distortion threshold lam.
        """
        b, d, h, w = z.shape
        if n_stages is None:
            n_stages = self.num_stages
        if not self.training:  # inference: exactly the codec's path
            n = int(n_stages) if isinstance(n_stages, int) else int(n_stages.max())
            if not isinstance(n_stages, int) and bool((n_stages != n).any()):
                raise ValueError("eval-mode forward needs the same number of stages for the whole batch")
            codes = self.encode(z, n, lam)
            return QuantizerOutput(self.decode(codes), codes, z.new_zeros(()), {})
        if isinstance(n_stages, int):
            n_stages = torch.full((b,), n_stages, dtype=torch.long)
        n_stages = n_stages.to(z.device)
        x = z.permute(0, 2, 3, 1).reshape(-1, d)
        keep_rows = n_stages.repeat_interleave(h * w)
        residual = x.detach()
        qsum = torch.zeros_like(x)
        commit = z.new_zeros(())
        codes, metrics = [], {}
        for s, cb in enumerate(self.stages):
            idx = cb.quantize(residual)
            q = cb.dequantize(idx)
            mask = (keep_rows > s).to(x.dtype)[:, None]
            if self.training:
                cb.ema_update(residual, idx)
                q = cb.dequantize(idx)
                if mask.sum() > 0:
                    commit = commit + ((x - qsum.detach() - q.detach()).pow(2) * mask).sum() / (mask.sum() * d)
                usage = torch.bincount(idx, minlength=cb.size).float()
                p = usage / usage.sum()
                metrics[f"perplexity_{s}"] = float(torch.exp(-(p * (p + 1e-10).log()).sum()))
            qsum = qsum + q * mask
            residual = residual - q
            codes.append(idx.view(b, h, w))
        quantized = qsum.view(b, h, w, d).permute(0, 3, 1, 2)
        if self.training:  # straight-through gradient to the encoder
            quantized = z + (quantized - z).detach()
        return QuantizerOutput(quantized, torch.stack(codes, 1), commit, metrics)

    def encode(self, z: torch.Tensor, n_stages: int, lam: float = 0.0,
               rate: Callable[[int, torch.Tensor | None], torch.Tensor] | None = None) -> torch.Tensor:
        """Code indices (B, n_stages, h, w) of z.

        With lam > 0 a stage sends the zero code (cheap to entropy code) wherever the best code would
        reduce the squared residual by less than lam: rate-distortion optimised quantization.
        rate, when given, replaces that rule by entropy-constrained quantization: rate(s, codes of stage s-1
        (B*h*w,) or None) is the cost (B*h*w, size) of every code at every position in units of the squared
        residual (an entropy model's bits times a multiplier), and each stage sends the code of least squared
        residual + rate. The decoder needs neither: it only sees the codes.
        """
        b, d, h, w = z.shape
        residual = z.permute(0, 2, 3, 1).reshape(-1, d)
        codes = []
        for s, cb in enumerate(self.stages[:n_stages]):
            if rate is not None:
                idx = (cb.distances(residual) + rate(s, codes[-1].reshape(-1) if codes else None)).argmin(1)
            else:
                idx = cb.quantize(residual)
            if lam > 0 and rate is None:
                gain = residual.pow(2).sum(1) - (residual - cb.dequantize(idx)).pow(2).sum(1)
                idx = torch.where(gain < lam, torch.zeros_like(idx), idx)
            residual = residual - cb.dequantize(idx)
            codes.append(idx.view(b, h, w))
        return torch.stack(codes, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Quantized latent (B, D, h, w) from code indices (B, n, h, w)."""
        q = sum(cb.dequantize(codes[:, s]) for s, cb in enumerate(self.stages[: codes.shape[1]]))
        return q.permute(0, 3, 1, 2).contiguous()
