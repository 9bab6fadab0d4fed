"""`python -m eval.pframes`: average P-frame size / I-frame size of ncodec at every level, clip coded as one GOP."""
from __future__ import annotations

import argparse
import sys

import numpy as np

import bitstream
import neuralcodec

from .clips import load_clips


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.pframes", description=__doc__)
    p.add_argument("--clips", nargs="+", default=["standard"])
    p.add_argument("--max-frames", type=int, default=32)
    p.add_argument("--model")
    a = p.parse_args(argv)
    codec = neuralcodec.load_codec(a.model)
    for clip in load_clips(a.clips, a.max_frames, None, None):
        ratios = []
        for q in codec.qualities:
            _, packets = bitstream.unpack_stream(codec.encode(clip.frames, quality=q, gop=len(clip.frames)))
            sizes = [sum(len(c) for c in pk.chunks) for pk in packets]
            ratios.append(f"q{q} {np.mean(sizes[1:]) / sizes[0]:.2f}")
        print(f"{clip.name} ({len(clip.frames)} frames) P/I:", ", ".join(ratios), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
