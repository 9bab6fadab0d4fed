"""Turn a training checkpoint into a shipped model: fp16 weights, frozen CDF tables, config, sha256."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..codec import Codec, FrameCoder, Level
from ..model import VideoCodecModel
from ..registry import save_model


def load_checkpoint(path: str | Path) -> VideoCodecModel:
    """The model of a training checkpoint (weights only; loaded without unpickling code)."""
    from .train import TrainConfig
    state = torch.load(path, map_location="cpu", weights_only=True)
    cfg = TrainConfig.from_json(state["config"])
    model = VideoCodecModel(cfg.model)
    model.load_state_dict(state["model"])
    return model.eval()


def round_to_half(model: VideoCodecModel) -> None:
    """Round weights as save_model stores them, so statistics are gathered on the shipped weights."""
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point() and not k.endswith(".embed"):
                v.copy_(v.half().float())


def gather_statistics(model: VideoCodecModel, clips: list[np.ndarray], levels: dict[int, Level] | None = None,
                      gop: int = 1000, progress: bool = True) -> dict[str, np.ndarray]:
    """Symbol counts of the real coding path over clips (T, H, W, 3) uint8 at every quality level."""
    codec = Codec(model, "stats", "00" * 32, levels)
    ent = model.entropy
    counts = ent.new_counts()
    jobs = [(clip, lv) for clip in clips for lv in codec.levels.values()]
    for clip, lv in tqdm(jobs, disable=not progress, desc="statistics"):
        coder = FrameCoder(codec, clip.shape[2], clip.shape[1], lv, gop)
        for frame in clip:
            prev = coder.prev_codes
            ftype, codes, mv, _ = coder.analyse(frame)
            ent.accumulate(counts, int(ftype), codes, prev, mv)
    return counts


def training_clips(root: str, n: int, clip_len: int, crop: int, seed: int = 7) -> list[np.ndarray]:
    from .data import ClipDataset
    ds = ClipDataset(root, "train", clip_len, crop, seed=seed)
    return [(ds[i] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy() for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.export", description=__doc__)
    p.add_argument("checkpoint")
    p.add_argument("-o", "--out", required=True, help="output .safetensors")
    p.add_argument("--name", default="ncodec-base")
    p.add_argument("--data-root", default="data/")
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--clip-len", type=int, default=8)
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--levels", help='quality table as JSON: {"1": [stages, lam_i, lam_p], ...}')
    a = p.parse_args(argv)
    levels = ({int(q): Level(*v) for q, v in json.loads(a.levels).items()} if a.levels else None)
    torch.manual_seed(0)
    model = load_checkpoint(a.checkpoint)
    round_to_half(model)
    clips = training_clips(a.data_root, a.clips, a.clip_len, a.crop)
    counts = gather_statistics(model, clips, levels)
    model.entropy.update(counts)
    digest = save_model(model, a.name, a.out, levels=levels)
    size = Path(a.out).stat().st_size
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {a.out}: {size / 1e6:.2f} MB, {n_params / 1e6:.2f} M parameters")
    print(f"sha256 {digest}")
    print(f'pin it in neuralcodec/registry.py: ModelEntry("{a.name}", "{Path(a.out).name}", "{digest}")')
    return 0


if __name__ == "__main__":
    sys.exit(main())
