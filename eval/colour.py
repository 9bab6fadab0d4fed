"""RGB -> YCbCr conversions used by the metrics (BT.601 full range for PSNR-YUV, BT.601 limited-range luma for VMAF)."""
from __future__ import annotations

import numpy as np

# BT.601 luma coefficients (Kr, Kg, Kb).
_KR, _KG, _KB = 0.299, 0.587, 0.114


def rgb_to_ycbcr601_full(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (...,3) -> float64 Y'CbCr (...,3), BT.601 full range (JPEG/JFIF): Y in [0,255], Cb/Cr centred on 128.

    No rounding and no chroma subsampling (4:4:4), so the conversion itself adds no error.
    """
    x = np.asarray(rgb, dtype=np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = _KR * r + _KG * g + _KB * b
    cb = 128.0 + (b - y) / (2.0 * (1.0 - _KB))
    cr = 128.0 + (r - y) / (2.0 * (1.0 - _KR))
    return np.stack([y, cb, cr], axis=-1)


def rgb_to_luma601_limited(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (...,3) -> uint8 luma (...), BT.601 limited range (16..235), rounded.

    This is the Y plane ffmpeg/swscale produces by default for rgb24 -> yuv420p, i.e. what libvmaf would see.
    """
    x = np.asarray(rgb, dtype=np.float64)
    y = _KR * x[..., 0] + _KG * x[..., 1] + _KB * x[..., 2]
    return np.clip(np.rint(16.0 + y * (219.0 / 255.0)), 0, 255).astype(np.uint8)
