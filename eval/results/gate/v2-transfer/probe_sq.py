"""Probe (no training): 1.17's I-frame encoder/decoder with per-channel scalar quantization instead of its RVQ.

Rate: the ideal adaptive rate of each channel's integers under their own empirical distribution on the frame set
(optimistic, like a trained factorized prior). Against it: the RVQ I-frames at each level's stage count, rate the
same empirical entropy per stage (so the two are measured alike). Frames: the bundled sample clip (training material).
Usage: PYTHONPATH=. python eval/results/gate/v2-transfer/probe_sq.py
"""
import av
import numpy as np
import torch

from neuralcodec import load_codec
from neuralcodec.metrics import psnr_from_mse

torch.set_grad_enabled(False)
m = load_codec().model.eval()
frames = [f.to_ndarray(format="rgb24") for f in av.open("neuralcodec/assets/sample.mp4").decode(video=0)][:30:3]
x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
x = x[..., : x.shape[-2] // 8 * 8, : x.shape[-1] // 8 * 8]
npix = x.shape[0] * x.shape[2] * x.shape[3]
y = m.i_enc(x)
std = y.std(dim=(0, 2, 3), keepdim=True)
print("latent std per channel:", [round(float(s), 3) for s in std.flatten()])


def ent(q):
    _, c = torch.unique(q, return_counts=True)
    p = c.double() / c.sum()
    return float(-(c * p.log2()).sum())


def ps(r):
    return psnr_from_mse(float((torch.round(r.clamp(0, 1) * 255) / 255 - x).pow(2).mean()), 1.0)


print("RVQ stages: bpp (empirical) / PSNR")
for n in range(1, 9):
    codes = m.i_vq.encode(y, n)
    bits = sum(ent(codes[:, s]) for s in range(n))
    print(f"  {n}: {bits / npix:.4f} bpp {ps(m.decode_intra(codes)):.2f} dB")
print("scalar step (x channel std): bpp / PSNR")
for k in [2.0, 1.4, 1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08]:
    d = k * std
    q = torch.round(y / d)
    bits = sum(ent(q[:, c]) for c in range(q.shape[1]))
    print(f"  {k}: {bits / npix:.4f} bpp {ps(m.i_dec(q * d) + 0.5):.2f} dB")
