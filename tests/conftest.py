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


@pytest.fixture(scope="session")
def packed(tmp_path_factory):
    """A tiny prepared root (the writers prepare.py uses) and its pack: (root, pack path, index)."""
    from neuralcodec.training import pack as K
    from neuralcodec.training.data import prepare as P
    r = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(3)
    video = P.numpy_procedural_clip(seed=1, n=20, size=(96, 72))
    tr, va = P.split_train_val(len(video))
    entries = [P.write_clip(r, "video", "vid", "train", video[tr]), P.write_clip(r, "video", "vid", "val", video[va])]
    proc = P.numpy_procedural_clip(seed=2, n=12, size=(64, 48))
    entries += [P.write_clip(r, "procedural", "proc", "train", proc[:9]),
                P.write_clip(r, "procedural", "proc", "val", proc[9:])]
    yy, xx = np.mgrid[0:300, 0:400]
    photo = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1) + rng.integers(0, 24, (300, 400, 3))
    entries += P.write_photo(r, "p_train", "train", photo.clip(0, 255).astype(np.uint8), scales=(300, 64))
    entries += P.write_photo(r, "p_val", "val", rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), scales=(90,))
    P.write_manifest(r, entries)
    path = r / "t.ncpack"
    index = K.build_pack(r, path, log=lambda m: None)
    return r, path, index
