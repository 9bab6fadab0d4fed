"""Perceptual metrics through their PyTorch packages, on CPU and offline: VMAF (vmaf-torch) and ColorVideoVDP."""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
import torch

from eval.colour import rgb_to_luma601_limited
from eval.metrics import CVVDP_DISPLAY, check_pair


@lru_cache(maxsize=1)
def _vmaf_model():
    from vmaf_torch import VMAF

    model = VMAF(temporal_pooling=False, enable_motion=True, clip_score=True)
    model.eval()
    return model


def vmaf(ref: np.ndarray, dist: np.ndarray) -> float:
    """Mean VMAF (v0.6.1 model via vmaf-torch) over frames, on BT.601 limited-range luma."""
    check_pair(ref, dist)
    y_ref = torch.from_numpy(rgb_to_luma601_limited(ref)).float()[:, None]
    y_dist = torch.from_numpy(rgb_to_luma601_limited(dist)).float()[:, None]
    with torch.no_grad():
        scores = _vmaf_model()(y_ref, y_dist)
    return float(scores.mean())


@lru_cache(maxsize=1)
def _cvvdp_model():
    import logging

    # importing pycvvdp pulls in torch.utils.cpp_extension, which warns about a missing CUDA runtime on CPU machines
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import pycvvdp

    return pycvvdp.cvvdp(display_name=CVVDP_DISPLAY, quiet=True, device=torch.device("cpu"))


def cvvdp(ref: np.ndarray, dist: np.ndarray, fps: Fraction) -> float:
    """ColorVideoVDP quality in JOD (higher is better; 10 = no visible difference)."""
    check_pair(ref, dist)
    with torch.no_grad():
        q, _ = _cvvdp_model().predict(torch.from_numpy(dist), torch.from_numpy(ref),
                                      dim_order="FHWC", frames_per_second=float(fps))
    return float(q)
