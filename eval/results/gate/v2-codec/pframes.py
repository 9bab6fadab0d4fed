"""P/I size ratios and rate span of a model on the gate's validation clips (evidence script, not product code).

    PYTHONPATH=. python eval/results/gate/v2-codec/pframes.py MODEL [--qualities 1,4,8,12,16]

For each validation clip (first 20 frames, GOP 32, scene cuts on, as the gate codes them) and quality: bits per
pixel, the mean P-frame packet over the mean I-frame packet, the number of I-frames; then each clip's rate span
(highest quality's bpp over the lowest's).
"""
import argparse

import numpy as np

import bitstream
from eval.compare import validation_clips
from neuralcodec import load_codec


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--qualities", default="1,4,8,12,16")
    p.add_argument("--pack", default="data/train.ncpack")
    a = p.parse_args()
    codec = load_codec(a.model)
    qs = [int(q) for q in a.qualities.split(",")]
    for name, frames in validation_clips(a.pack, 20).items():
        t, h, w = frames.shape[:3]
        bpp = {}
        for q in qs:
            data = codec.encode(frames, quality=q)
            _, packets = bitstream.unpack_stream(data)
            size = {k: [sum(map(len, pk.chunks)) for pk in packets if pk.frame_type.name == k] for k in "IP"}
            bpp[q] = 8 * len(data) / (t * h * w)
            print(f"{name} q{q}: {bpp[q]:.4f} bpp, P/I {np.mean(size['P']) / np.mean(size['I']):.3f}, "
                  f"{len(size['I'])} I-frames")
        print(f"{name}: rate span q{qs[-1]}/q{qs[0]} = {bpp[qs[-1]] / bpp[qs[0]]:.1f}x")


if __name__ == "__main__":
    main()
