"""Training-step speed on this machine: `python -m neuralcodec.training.speed --data data/train.ncpack`.

Prints measured seconds per step (batch of clips, forward + backward + optimizer) for fp32 and bf16 autocast,
with and without channels_last, and the cost of drawing a batch from the pack against the per-clip ClipDataset
path (when a prepared data root is given).
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from ..model import ModelConfig, VideoCodecModel


def time_steps(model: VideoCodecModel, clip: torch.Tensor, steps: int, warmup: int = 3) -> float:
    """Median seconds per training step (rate + distortion loss, backward, Adam) on a fixed batch."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    q = torch.arange(clip.shape[0]) % model.cfg.num_qualities
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        out = model(clip, q)
        loss = (out.bits_y + out.bits_z).mean() / clip[0, 0].numel() + (out.recon - clip).pow(2).mean() * 100
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    from ._malloc import keep_freed_memory
    from .data import PackDataset
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/train.ncpack")
    p.add_argument("--data-root", help="a prepared data folder, to time ClipDataset too")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    a = p.parse_args(argv)
    keep_freed_memory()
    torch.manual_seed(0)
    ds = PackDataset(a.data, "train", 3, a.crop, seed=0)
    g = torch.Generator().manual_seed(0)
    t0 = time.perf_counter()
    for _ in range(20):
        clip = ds.sample(a.batch_size, g)
    print(f"data: PackDataset.sample({a.batch_size}) {1000 * (time.perf_counter() - t0) / 20:.1f} ms per batch")
    if a.data_root:
        from .data import ClipDataset
        cds = ClipDataset(a.data_root, "train", 3, a.crop, seed=0)
        t0 = time.perf_counter()
        for i in range(5):
            torch.stack([cds[i * a.batch_size + j] for j in range(a.batch_size)])
        print(f"data: ClipDataset, {a.batch_size} items {1000 * (time.perf_counter() - t0) / 5:.1f} ms per batch")
    print(f"train step, batch {a.batch_size} x 3 frames of {a.crop}x{a.crop}, {torch.get_num_threads()} threads:")
    for bf16 in (False, True):
        for channels_last in (False, True):
            model = VideoCodecModel(ModelConfig())
            model.autocast = bf16
            x = clip
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
            s = time_steps(model, x, a.steps)
            print(f"  {'bf16 autocast' if bf16 else 'fp32':14s} channels_last={'on ' if channels_last else 'off'}"
                  f"  {s:.3f} s/step  ({1 / s:.2f} steps/s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
