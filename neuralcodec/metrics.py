"""The one PSNR of the project: from a mean squared error, and over a whole clip of uint8 frames."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def psnr_from_mse(mse: float, peak: float = 255.0) -> float:
    """PSNR in dB for a mean squared error on samples of range `peak`; inf when mse == 0."""
    return math.inf if mse <= 0 else 10.0 * math.log10(peak * peak / mse)


def clip_psnr(reference: Sequence[np.ndarray] | np.ndarray, decoded: Sequence[np.ndarray] | np.ndarray) -> float:
    """PSNR in dB over all RGB samples of a clip of uint8 frames (one MSE for the whole clip)."""
    ref = np.asarray(np.stack(reference), dtype=np.float64)
    dec = np.asarray(np.stack(decoded), dtype=np.float64)
    if ref.shape != dec.shape:
        raise ValueError(f"reference and decoded shapes differ: {ref.shape} vs {dec.shape}")
    return psnr_from_mse(float(np.mean((ref - dec) ** 2)))
