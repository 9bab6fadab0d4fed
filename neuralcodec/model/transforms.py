"""Analysis (encoder), synthesis (decoder), context and hyper-analysis transforms (float; 1/16 latent)."""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .layers import ResBlock, act, depth_to_space, down, space_to_depth


class Encoder(nn.Module):
    """(B, cin, H, W) -> y (B, latent_dim, H/16, W/16); runs only in the encoder, so it may be heavier."""

    def __init__(self, cin: int, cfg: ModelConfig):
        super().__init__()
        c1, c2, c3, c4 = cfg.channels
        n1, n2, n3, n4 = cfg.enc_blocks
        self.net = nn.Sequential(
            space_to_depth(cin, c1), act(), *[ResBlock(c1) for _ in range(n1)],
            down(c1, c2), *[ResBlock(c2) for _ in range(n2)],
            down(c2, c3), *[ResBlock(c3) for _ in range(n3)],
            down(c3, c4), *[ResBlock(c4) for _ in range(n4)],
            nn.Conv2d(c4, cfg.latent_dim, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ContextNet(nn.Module):
    """Features of the motion-compensated previous frame at 1/2, 1/4, 1/8 and 1/16 resolution."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c1, c2, c3, c4 = cfg.channels
        self.s2 = space_to_depth(3, c1)
        self.s4 = nn.Sequential(act(), nn.Conv2d(c1, c2, 3, stride=2, padding=1))
        self.s8 = nn.Sequential(act(), nn.Conv2d(c2, c3, 3, stride=2, padding=1))
        self.s16 = nn.Sequential(act(), nn.Conv2d(c3, c4, 3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f2 = self.s2(x)
        f4 = self.s4(f2)
        f8 = self.s8(f4)
        return [f2, f4, f8, self.s16(f8)]


class Decoder(nn.Module):
    """y_hat (B, latent_dim, h, w) [+ context features] -> image (B, 3, 16h, 16w).

    Thin at high resolution (3x3 convolutions then pixel shuffle): this is what every decoded pixel costs.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c1, c2, c3, c4 = cfg.channels
        n1, n2, n3, n4 = cfg.dec_blocks
        self.inp = nn.Conv2d(cfg.latent_dim, c4, 3, padding=1)
        self.b16 = nn.Sequential(act(), *[ResBlock(c4) for _ in range(n4)])
        self.up8 = depth_to_space(c4, c3)
        self.b8 = nn.Sequential(act(), *[ResBlock(c3) for _ in range(n3)])
        self.up4 = depth_to_space(c3, c2)
        self.b4 = nn.Sequential(act(), *[ResBlock(c2) for _ in range(n2)])
        self.up2 = depth_to_space(c2, c1)
        self.b2 = nn.Sequential(act(), *[ResBlock(c1) for _ in range(n1)])
        self.out = depth_to_space(c1, 3)

    def forward(self, y: torch.Tensor, ctx: list[torch.Tensor] | None = None) -> torch.Tensor:
        h = self.inp(y)
        stages = [(self.b16, self.up8), (self.b8, self.up4), (self.b4, self.up2), (self.b2, self.out)]
        for i, (block, upsample) in enumerate(stages):
            if ctx is not None:
                h = h + ctx[3 - i]
            h = upsample(block(h))
        return h


class HyperAnalysis(nn.Module):
    """y (B, latent_dim, h, w) -> z (B, hyper_dim, h/4, w/4); encoder side only, float."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.hyper_channels
        self.net = nn.Sequential(
            nn.Conv2d(cfg.latent_dim, c, 3, padding=1), act(),
            nn.Conv2d(c, c, 3, stride=2, padding=1), act(),
            nn.Conv2d(c, cfg.hyper_dim, 3, stride=2, padding=1),
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)
