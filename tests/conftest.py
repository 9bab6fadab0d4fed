"""Shared fixtures: a tiny codec with initialised codebooks and frozen tables, and small test clips."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcodec.codec import Codec, Level
from neuralcodec.training.export import gather_statistics
from neuralcodec.model import TINY, VideoCodecModel


def textured_clip(t: int, h: int, w: int, pan: int = 0, seed: int = 0) -> np.ndarray:
    """A smooth random texture, shifted by `pan` pixels per frame (uint8 (T, H, W, 3))."""
    rng = np.random.default_rng(seed)
    big = rng.random((h // 4 + 8, (w + pan * t) // 4 + 8, 3))
    big = torch.nn.functional.interpolate(torch.from_numpy(big).permute(2, 0, 1)[None].float(),
                                          scale_factor=4, mode="bicubic", align_corners=False)[0]
    img = (big.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return np.stack([img[:h, i * pan: i * pan + w] for i in range(t)])


def write_data_root(root, video_size: tuple[int, int], proc_size: tuple[int, int], train_photo: np.ndarray,
                    train_scales: tuple[int, ...], val_photo: np.ndarray, val_scales: tuple[int, ...]) -> list[dict]:
    """A tiny prepared data root, written with the writers prepare.py uses: a 20-frame video and a 12-frame
    procedural clip, each split into train and val, and one training and one validation photo at the given
    scales; returns its manifest entries."""
    from neuralcodec.training.data import prepare as P

    video = P.numpy_procedural_clip(seed=1, n=20, size=video_size)
    tr, va = P.split_train_val(len(video))
    entries = [P.write_clip(root, "video", "vid", "train", video[tr]),
               P.write_clip(root, "video", "vid", "val", video[va])]
    proc = P.numpy_procedural_clip(seed=2, n=12, size=proc_size)
    entries += [P.write_clip(root, "procedural", "proc", "train", proc[:9]),
                P.write_clip(root, "procedural", "proc", "val", proc[9:])]
    entries += P.write_photo(root, "p_train", "train", train_photo, scales=train_scales)
    entries += P.write_photo(root, "p_val", "val", val_photo, scales=val_scales)
    P.write_manifest(root, entries)
    return entries


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests: on a busy 2-core machine (tests beside a training run) OpenMP's
    spin-waiting threads make the small per-frame work of tiny clips 10x+ slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_tiny_model(seed: int = 0) -> VideoCodecModel:
    torch.manual_seed(seed)
    model = VideoCodecModel(TINY).eval()
    clip = torch.from_numpy(textured_clip(3, 32, 48, pan=1, seed=seed)).permute(0, 3, 1, 2).float()[None] / 255
    with torch.no_grad():
        out = model(clip, bypass_vq=True)
        g = torch.Generator().manual_seed(seed)
        model.i_vq.init_kmeans(out.latents[0], generator=g)
        model.p_vq.init_kmeans(torch.cat(out.latents[1:]), generator=g)
    counts = gather_statistics(model, [textured_clip(4, 32, 48, pan=1, seed=seed + 1)], progress=False)
    model.entropy.cdf = counts.cdf()
    return model


@pytest.fixture(scope="session")
def tiny_model() -> VideoCodecModel:
    return make_tiny_model()


# stages grow and the encoder's rate-distortion thresholds shrink with the level, as in a shipped table
TINY_LEVELS = {1: Level(1, 0.0, 0.2), 2: Level(2, 0.01, 0.05), 3: Level(3, 0.0, 0.0)}


@pytest.fixture(scope="session")
def tiny_codec(tiny_model) -> Codec:
    return Codec(tiny_model, "tiny-test", "ab" * 32, TINY_LEVELS)
