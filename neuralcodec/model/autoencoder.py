"""Analysis (encoder), synthesis (decoder) and context networks operating at 1/8 resolution."""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .layers import ResBlock, act, depth_to_space, down, space_to_depth, up


class Encoder(nn.Module):
    """Maps an image-like tensor (B, cin, H, W) to a latent (B, D, H/8, W/8).

    Without bias the encoder is positively homogeneous: a zero input (no residual to code) gives an exactly
    zero latent, which rounds to all-zero integers.
    """

    def __init__(self, cin: int, cfg: ModelConfig, bias: bool = True):
        super().__init__()
        c1, c2, c3 = cfg.channels
        n1, n2, n3 = cfg.blocks
        self.net = nn.Sequential(
            space_to_depth(cin, c1, bias), act(), *[ResBlock(c1, bias) for _ in range(n1)],
            down(c1, c2, bias), *[ResBlock(c2, bias) for _ in range(n2)],
            down(c2, c3, bias), *[ResBlock(c3, bias) for _ in range(n3)],
            nn.Conv2d(c3, cfg.latent_dim, 3, padding=1, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ContextNet(nn.Module):
    """Features of the motion-compensated previous frame at 1/2, 1/4 and 1/8 resolution."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c1, c2, c3 = cfg.channels
        self.s2 = space_to_depth(3, c1)
        self.s4 = nn.Sequential(act(), nn.Conv2d(c1, c2, 3, stride=2, padding=1))
        self.s8 = nn.Sequential(act(), nn.Conv2d(c2, c3, 3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f2 = self.s2(x)
        f4 = self.s4(f2)
        f8 = self.s8(f4)
        return f2, f4, f8


class Decoder(nn.Module):
    """Maps a quantized latent (B, D, h, w), optionally with context features, to an image (B, 3, 8h, 8w)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c1, c2, c3 = cfg.channels
        n1, n2, n3 = cfg.blocks
        self.inp = nn.Conv2d(cfg.latent_dim, c3, 3, padding=1)
        self.b8 = nn.Sequential(act(), *[ResBlock(c3) for _ in range(n3)])
        self.up4 = up(c3, c2)
        self.b4 = nn.Sequential(act(), *[ResBlock(c2) for _ in range(n2)])
        self.up2 = up(c2, c1)
        self.b2 = nn.Sequential(act(), *[ResBlock(c1) for _ in range(n1)])
        self.out = depth_to_space(c1, 3)

    def forward(self, q: torch.Tensor,
                ctx: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        h = self.inp(q)
        if ctx is not None:
            h = h + ctx[2]
        h = self.up4(self.b8(h))
        if ctx is not None:
            h = h + ctx[1]
        h = self.up2(self.b4(h))
        if ctx is not None:
            h = h + ctx[0]
        return self.out(self.b2(h))
