"""Quality and rate metrics on uint8 RGB clips (T,H,W,3): PSNR (RGB, YUV 6:1:1), MS-SSIM, VMAF, ColorVideoVDP, bpp."""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable

import numpy as np
import torch

from eval.colour import rgb_to_ycbcr601_full
from neuralcodec.metrics import psnr_from_mse

FAST_METRICS = ("psnr", "msssim")
ALL_METRICS = ("psnr", "msssim", "vmaf", "cvvdp")
# Keys used for RD plots and BD-rates (all "higher is better").
RD_KEYS = ("psnr_rgb", "psnr_yuv", "msssim", "vmaf", "cvvdp")
UNITS = {"psnr_rgb": "dB", "psnr_yuv": "dB", "msssim": "", "vmaf": "", "cvvdp": "JOD"}

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MSSSIM_WIN = 11
CVVDP_DISPLAY = "standard_fhd"

DEFINITIONS = {
    "bpp": "total encoded bits / (frames * width * height)",
    "kbps": "total encoded bits / (frames / fps) / 1000",
    "psnr_rgb": "mean over frames of per-frame PSNR over all R,G,B samples, peak 255 (inf for identical frames)",
    "psnr_yuv": "mean over frames of (6*PSNR_Y + PSNR_U + PSNR_V)/8; Y'CbCr from RGB by BT.601 full range "
                "(JPEG: Y=0.299R+0.587G+0.114B, Cb=128+(B-Y)/1.772, Cr=128+(R-Y)/1.402), float, 4:4:4, peak 255",
    "msssim": "pytorch-msssim on RGB (data_range 255, 11x11 Gaussian window sigma 1.5), mean over channels and frames; "
              "frames whose smaller side is <= 160 use fewer scales: the largest S<=5 with min side > 10*2**(S-1), "
              "with the first S standard weights renormalised to sum 1 (number of scales recorded per clip)",
    "vmaf": "vmaf-torch (VMAF v0.6.1 default model, score clipped to [0,100], motion enabled), mean over frames, "
            "on luma Y = round(16 + 219/255*(0.299R+0.587G+0.114B)) (BT.601 limited range, as swscale rgb24->yuv420p)",
    "cvvdp": f"ColorVideoVDP (pycvvdp, display model '{CVVDP_DISPLAY}'), JOD, RGB input as display-encoded sRGB",
}


def check_pair(ref: np.ndarray, dist: np.ndarray) -> None:
    """ValueError unless ref and dist are uint8 (T,H,W,3) clips of the same shape."""
    if ref.shape != dist.shape:
        raise ValueError(f"reference and distorted shapes differ: {ref.shape} vs {dist.shape}")
    if ref.ndim != 4 or ref.shape[-1] != 3:
        raise ValueError(f"expected (T,H,W,3) RGB clips, got shape {ref.shape}")
    if ref.dtype != np.uint8 or dist.dtype != np.uint8:
        raise ValueError("expected uint8 frames")


def rate(nbytes: int, frames: int, width: int, height: int, fps: Fraction) -> dict[str, float]:
    """Bits per pixel and kbit/s for a clip coded in nbytes bytes."""
    bits = 8 * int(nbytes)
    return {
        "bytes": int(nbytes),
        "bpp": bits / (frames * width * height),
        "kbps": bits / (frames / float(fps)) / 1000.0,
    }


def psnr_rgb(ref: np.ndarray, dist: np.ndarray) -> float:
    """Mean over frames of per-frame PSNR on all RGB samples (dB)."""
    check_pair(ref, dist)
    vals = [psnr_from_mse(float(np.mean((r.astype(np.float64) - d) ** 2))) for r, d in zip(ref, dist)]
    return float(np.mean(vals))


def psnr_yuv(ref: np.ndarray, dist: np.ndarray) -> dict[str, float]:
    """Per-plane PSNR (BT.601 full-range Y'CbCr, 4:4:4) and the 6:1:1 weighted PSNR, each averaged over frames."""
    check_pair(ref, dist)
    ys, us, vs, ws = [], [], [], []
    for r, d in zip(ref, dist):
        diff = rgb_to_ycbcr601_full(r) - rgb_to_ycbcr601_full(d)
        p = [psnr_from_mse(float(np.mean(diff[..., c] ** 2))) for c in range(3)]
        ys.append(p[0])
        us.append(p[1])
        vs.append(p[2])
        ws.append((6 * p[0] + p[1] + p[2]) / 8)
    return {"psnr_yuv": float(np.mean(ws)), "psnr_y": float(np.mean(ys)),
            "psnr_u": float(np.mean(us)), "psnr_v": float(np.mean(vs))}


def msssim_scales(height: int, width: int) -> int:
    """Number of MS-SSIM scales usable for a frame size (5 is the standard; fewer for small frames)."""
    side = min(height, width)
    scales = 0
    for s in range(1, len(MSSSIM_WEIGHTS) + 1):
        if side > (MSSSIM_WIN - 1) * 2 ** (s - 1):
            scales = s
    if scales == 0:
        raise ValueError(f"frame {width}x{height} too small for MS-SSIM (smaller side must exceed {MSSSIM_WIN - 1})")
    return scales


def _ms_ssim_batch(x: torch.Tensor, y: torch.Tensor, weights: Iterable[float]) -> torch.Tensor:
    """MS-SSIM per image of an (N,C,H,W) batch, with as many scales as weights (same algorithm as pytorch-msssim)."""
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    w = x.new_tensor(list(weights))
    win = _fspecial_gauss_1d(MSSSIM_WIN, 1.5).repeat([x.shape[1], 1, 1, 1])
    mcs = []
    for i in range(w.shape[0]):
        ssim_pc, cs = _ssim(x, y, data_range=255.0, win=win, size_average=False, K=(0.01, 0.03))
        if i < w.shape[0] - 1:
            mcs.append(torch.relu(cs))
            pad = [s % 2 for s in x.shape[2:]]
            x = torch.nn.functional.avg_pool2d(x, kernel_size=2, padding=pad)
            y = torch.nn.functional.avg_pool2d(y, kernel_size=2, padding=pad)
    stack = torch.stack(mcs + [torch.relu(ssim_pc)], dim=0)
    return torch.prod(stack ** w.view(-1, 1, 1), dim=0).mean(1)


def msssim(ref: np.ndarray, dist: np.ndarray, batch: int = 8) -> tuple[float, int]:
    """Mean MS-SSIM over frames and its number of scales (see DEFINITIONS['msssim'])."""
    check_pair(ref, dist)
    scales = msssim_scales(ref.shape[1], ref.shape[2])
    weights = np.asarray(MSSSIM_WEIGHTS[:scales])
    if scales < len(MSSSIM_WEIGHTS):  # the full set is used as published (sums to 1.0001), like pytorch-msssim
        weights = weights / weights.sum()
    vals = []
    with torch.no_grad():
        for i in range(0, ref.shape[0], batch):
            x = torch.from_numpy(ref[i:i + batch]).permute(0, 3, 1, 2).float()
            y = torch.from_numpy(dist[i:i + batch]).permute(0, 3, 1, 2).float()
            vals.append(_ms_ssim_batch(x, y, weights.tolist()))
    return float(torch.cat(vals).mean()), scales


def parse_metrics(spec: str) -> tuple[str, ...]:
    """'psnr,msssim' / 'all' / 'fast' -> tuple of metric groups; ValueError for unknown names."""
    spec = spec.strip().lower()
    if spec == "all":
        return ALL_METRICS
    if spec == "fast":
        return FAST_METRICS
    names = tuple(dict.fromkeys(n.strip() for n in spec.split(",") if n.strip()))
    bad = [n for n in names if n not in ALL_METRICS]
    if bad or not names:
        raise ValueError(f"unknown metric(s) {bad or spec!r}; choose from {', '.join(ALL_METRICS)}, 'fast' or 'all'")
    return names


def compute_metrics(ref: np.ndarray, dist: np.ndarray, fps: Fraction, metrics: Iterable[str]) -> dict[str, float]:
    """All requested metric groups for one decoded clip, as a flat dict of result keys."""
    from eval import perceptual

    check_pair(ref, dist)
    out: dict[str, float] = {}
    for m in metrics:
        if m == "psnr":
            out["psnr_rgb"] = psnr_rgb(ref, dist)
            out.update(psnr_yuv(ref, dist))
        elif m == "msssim":
            out["msssim"], _ = msssim(ref, dist)
        elif m == "vmaf":
            out["vmaf"] = perceptual.vmaf(ref, dist)
        elif m == "cvvdp":
            out["cvvdp"] = perceptual.cvvdp(ref, dist, fps)
        else:
            raise ValueError(f"unknown metric {m!r}")
    return out
