"""Speed benchmark: `python -m neuralcodec.bench` prints measured encode/decode frames/s of the shipped model."""
from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction

import av
import numpy as np
import torch


def sample_clip(width: int, height: int, frames: int) -> np.ndarray:
    """The packaged sample clip (demo.sample_frames), resized to width x height (natural content with motion)."""
    from .demo import sample_frames
    out = [av.VideoFrame.from_ndarray(f, format="rgb24").reformat(width=width, height=height).to_ndarray()
           for f in sample_frames()[1][:frames]]
    while len(out) < frames:  # play it back and forth if more frames are asked for
        out.extend(out[-2::-1][: frames - len(out)])
    return np.stack(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m neuralcodec.bench", description=__doc__)
    p.add_argument("--size", default="640x360")
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--quality", type=int)
    p.add_argument("--model")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    import neuralcodec
    from .metrics import clip_psnr
    codec = neuralcodec.load_codec(a.model)
    w, h = (int(v) for v in a.size.lower().split("x"))
    clip = sample_clip(w, h, a.frames)
    q = codec.default_quality if a.quality is None else a.quality
    codec.decode(codec.encode(clip[:2], quality=q))           # warm-up (first-call costs)
    t0 = time.perf_counter()
    data = codec.encode(clip, quality=q, fps=Fraction(30))
    t1 = time.perf_counter()
    frames = codec.decode(data)
    t2 = time.perf_counter()
    n_params = sum(p.numel() for p in codec.model.parameters())
    kmac = codec.card["decoder_kmac_per_pixel"]
    print(f"model {codec.name}: {n_params / 1e6:.2f} M parameters, decoder {kmac['I']:.1f} / {kmac['P']:.1f} kMAC "
          f"per pixel (I / P), quality {q}, {torch.get_num_threads()} threads")
    print(f"{a.frames} frames {w}x{h}: {len(data) * 8 / (a.frames * w * h):.4f} bpp, "
          f"PSNR {clip_psnr(clip, frames):.2f} dB")
    print(f"encode {a.frames / (t1 - t0):.1f} frames/s, decode {a.frames / (t2 - t1):.1f} frames/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
