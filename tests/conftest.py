"""Shared fixtures: a tiny exported codec (random weights, frozen tables) and small test clips."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcodec.codec import Codec
from neuralcodec.model import TINY, VideoCodecModel


def textured_clip(t: int, h: int, w: int, pan: int = 0, seed: int = 0) -> np.ndarray:
    """A smooth random texture, shifted by `pan` pixels per frame (uint8 (T, H, W, 3))."""
    rng = np.random.default_rng(seed)
    big = rng.random((h // 4 + 8, (w + pan * t) // 4 + 8, 3))
    big = torch.nn.functional.interpolate(torch.from_numpy(big).permute(2, 0, 1)[None].float(),
                                          scale_factor=4, mode="bicubic", align_corners=False)[0]
    img = (big.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return np.stack([img[:h, i * pan: i * pan + w] for i in range(t)])


def make_tiny_model(seed: int = 0) -> VideoCodecModel:
    """TINY with random weights and frozen tables (export's statistics pass on a small panning clip)."""
    from neuralcodec.training.export import export_model
    torch.manual_seed(seed)
    model = VideoCodecModel(TINY).eval()
    clip = torch.from_numpy(textured_clip(3, 32, 48, pan=2, seed=seed)).permute(0, 3, 1, 2).float()[None] / 255
    from neuralcodec.coding import build_tables
    from neuralcodec.training.export import motion_statistics
    from neuralcodec.registry import round_like_saved
    round_like_saved(model)
    build_tables(model, motion_statistics(model, clip))
    return model


@pytest.fixture(scope="session")
def tiny_model() -> VideoCodecModel:
    return make_tiny_model()


@pytest.fixture(scope="session")
def tiny_codec(tiny_model) -> Codec:
    return Codec(tiny_model, "tiny-test", "ab" * 32)
