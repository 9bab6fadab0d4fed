"""Shared fixtures: a tiny codec trained a few steps, with frozen tables, and small test clips."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcodec.codec import Codec
from neuralcodec.model import TINY, LearnedRateModel


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


def make_tiny_model(seed: int = 0) -> LearnedRateModel:
    """A tiny model with its tables frozen (peaked motion tables) and trained 30 steps, so that its scale
    indexes spread over the table and its rate estimate is near the coded size."""
    from bitstream import CdfTables
    from neuralcodec.coding import freeze_tables
    from neuralcodec.coding.entropy import mv_table_count
    torch.manual_seed(seed)
    model = LearnedRateModel(TINY)
    with torch.no_grad():       # latents of a few units, as a trained model's: the qualities then differ in rate
        for enc in (model.i_enc, model.p_enc):
            enc.net[-1].weight.mul_(30)
    clip = torch.from_numpy(textured_clip(2, 64, 64, pan=2, seed=seed)).permute(0, 3, 1, 2).float()[None] / 255
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        xhat, bits = model(clip.repeat(2, 1, 1, 1, 1), torch.tensor([0, TINY.qualities - 1]))
        loss = bits.mean() / 4096 + 100 * (xhat - clip).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    mv = [CdfTables.from_pmfs([np.exp(-np.abs(np.arange(TINY.mv_alphabet) - TINY.mv_alphabet // 2) / 4)])[0]
          for _ in range(mv_table_count(TINY.mv_coding))]
    model.entropy.cdf = freeze_tables(model, mv)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model() -> LearnedRateModel:
    return make_tiny_model()


@pytest.fixture(scope="session")
def tiny_codec(tiny_model) -> Codec:
    return Codec(tiny_model, "tiny-test", "ab" * 32)
