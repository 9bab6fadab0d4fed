"""Multiply-accumulate counts of the decoder, measured with hooks on a real forward pass (no guessing)."""
from __future__ import annotations

import torch
from torch import nn

from .codec_model import FrameCode, VideoCodecModel


def _count(model: nn.Module, run) -> int:
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total += out.numel() * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        run()
    finally:
        for h in handles:
            h.remove()
    return total


@torch.no_grad()
def decoder_macs_per_pixel(model: VideoCodecModel, height: int = 368, width: int = 640) -> dict[str, float]:
    """Decoder MACs per pixel of an I- and a P-frame (synthesis, context and the integer hyper-synthesis)."""
    cfg = model.cfg
    h, w = height // cfg.stride, width // cfg.stride
    hz, wz = -(-h // 4), -(-w // 4)
    q = torch.zeros(1, dtype=torch.long)
    z = torch.zeros(1, cfg.hyper_dim, hz, wz, dtype=torch.long)
    y = torch.zeros(1, cfg.latent_dim, h, w, dtype=torch.long)
    ref = torch.zeros(1, 3, height, width)
    mv = torch.zeros(1, 2, height // cfg.block_size, width // cfg.block_size, dtype=torch.long)
    out = {}
    for name, intra in (("i_frame", True), ("p_frame", False)):
        def run():
            params = model.frame_params(intra, z, q, (h, w), None if intra else y.float())
            model.decode_frame(FrameCode(intra, q, None if intra else mv, z, y), params, None if intra else ref)
        out[name] = _count(model, run) / (height * width)
    return out
