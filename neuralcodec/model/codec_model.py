"""The transforms and motion of the video codec network: intra (I) and motion-compensated conditional inter (P)."""
from __future__ import annotations

import torch
from torch import nn

from .autoencoder import ContextNet, Decoder, Encoder
from .config import ModelConfig
from .motion import MOTION_MERGE, block_warp, estimate_motion


def to_levels(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to 8-bit levels, as the decoder's output frame is."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def _fp32(t: torch.Tensor):
    """Autocast off (float32) inside: the motion search stays exact under bf16 training."""
    return torch.autocast(t.device.type, enabled=False)


class MotionCodecBase(nn.Module):
    """The I and P transforms at 1/8 resolution (encoders, decoders, the P-frame context network) and the
    encoder-side block motion with its warp; learned_rate.LearnedRateModel adds the gains, the integer latents and
    their hyperprior."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.i_enc, self.i_dec = Encoder(3, cfg), Decoder(cfg)
        self.p_enc, self.p_dec, self.p_ctx = Encoder(3, cfg, bias=False), Decoder(cfg), ContextNet(cfg)

    @property
    def mv_limit(self) -> int:
        """Largest motion component in quarter pels; decoded vectors are clamped to it too."""
        return 4 * (self.cfg.search_range + self.cfg.block_size)

    def motion(self, x: torch.Tensor, ref: torch.Tensor, search: int | None = None, finest: int = 1,
               merge: float = MOTION_MERGE) -> torch.Tensor:
        """Block motion of x from ref in quarter pels; `search` (pixels, at most the model's search_range) and
        `finest` (the finest refinement step in quarter pels) trade encode time for prediction quality, `merge`
        (mean absolute luma) prediction quality for motion bits (estimate_motion)."""
        search = self.cfg.search_range if search is None else min(search, self.cfg.search_range)
        with _fp32(x):
            mv = estimate_motion(x.float(), ref.float(), self.cfg.block_size, search, finest=finest, merge=merge,
                                 coding=self.cfg.mv_coding)
        return mv.clamp(-self.mv_limit, self.mv_limit)

    def warp(self, ref: torch.Tensor, mv: torch.Tensor) -> torch.Tensor:
        return block_warp(ref, mv, self.cfg.block_size)
