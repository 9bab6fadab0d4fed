"""Multiply-accumulates per pixel of the decoders, counted on the convolutions of a real decode."""
from __future__ import annotations

import torch
from torch import nn


def _count(module: nn.Module, fn) -> int:
    total = 0

    def hook(m: nn.Module, inputs, output) -> None:
        nonlocal total
        k = m.weight[0].numel()   # (cin / groups) x kh x kw multiply-accumulates per output element
        total += k * output.numel() // output.shape[0]

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
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
    codes = torch.zeros(1, 1, h, w, dtype=torch.long)
    frame = torch.zeros(1, 3, size, size)
    pixels = size * size
    return {"I": _count(model, lambda: model.decode_intra(codes)) / pixels,
            "P": _count(model, lambda: model.decode_inter(codes, frame)) / pixels}
