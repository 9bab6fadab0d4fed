"""Multiply-accumulates per pixel of the decoders, counted on the convolutions of a real decode."""
from __future__ import annotations

import torch
from torch import nn


def _count(module: nn.Module, fn) -> int:
    total = 0

    from .hyperprior import IntLayer

    def hook(m: nn.Module, inputs, output) -> None:
        nonlocal total
        conv = m.conv if isinstance(m, IntLayer) else m
        if isinstance(conv, nn.ConvTranspose2d):   # every input element meets cout x kh x kw weights
            total += conv.weight.numel() // conv.groups * inputs[0][0, 0].numel()
        else:                                      # (cin / groups) x kh x kw per output element
            total += conv.weight[0].numel() * output.numel() // output.shape[0]

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, IntLayer))]
    try:
        with torch.inference_mode():
            fn()
    finally:
        for h in handles:
            h.remove()
    return total


def decoder_macs_per_pixel(model, size: int = 64) -> dict[str, float]:
    """MACs per output pixel of decoding an I-frame and a P-frame (the latent's synthesis; the P-frame's context
    network on the warped frame included). Convolutions only: they are nearly all of the work, and fully
    convolutional, so the figure does not depend on the frame size."""
    cfg = model.cfg
    h = w = size // cfg.stride
    frame = torch.zeros(1, 3, size, size)
    pixels = size * size
    y = torch.zeros(1, cfg.latent_dim, h, w, dtype=torch.long)      # the synthesis and the hyper-synthesis
    z = torch.zeros(1, cfg.hyper_dim, h // 4, w // 4)               # of the scale indexes
    return {"I": _count(model, lambda: (model.decode_frame(y, 0), model.hyper_i(z))) / pixels,
            "P": _count(model, lambda: (model.decode_frame(y, 0, frame), model.hyper_p(z, y))) / pixels}
