"""Convolutional building blocks shared by the encoders, decoders and context network."""
from __future__ import annotations

import torch
from torch import nn


def act() -> nn.Module:
    return nn.LeakyReLU(0.1, inplace=True)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a skip connection."""

    def __init__(self, ch: int, bias: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=bias)
        self.act = act()
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.act(self.conv1(x)))


def down(cin: int, cout: int, bias: bool = True) -> nn.Module:
    """Halve the resolution."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=bias), act())


def space_to_depth(cin: int, cout: int, bias: bool = True) -> nn.Module:
    """Full resolution to half: pixel unshuffle (cheap on CPU) then a 3x3 convolution."""
    return nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(4 * cin, cout, 3, padding=1, bias=bias))


def depth_to_space(cin: int, cout: int) -> nn.Module:
    """Half resolution to full: a 3x3 convolution then pixel shuffle."""
    return nn.Sequential(nn.Conv2d(cin, 4 * cout, 3, padding=1), nn.PixelShuffle(2))


def up(cin: int, cout: int) -> nn.Module:
    """Double the resolution (no activation: callers add context then activate)."""
    return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
