"""Which integer contexts would code the RVQ codes in fewer bits? Measured, not guessed.

    PYTHONPATH=. python eval/results/entropy/contexts.py [--clips 16] [--levels 1,5,9,13,16] > contexts.txt

Collects the codes of the real coding path (FrameCoder.analyse, the shipped model and level table) on the export's
statistics clips (training data) and on the gate's validation clips (GOP 32), counts tables on the former under
several candidate context functions, and prints the ideal code length (-log2 p of the smoothed counts, what the
16-bit rANS tables approximate within a fraction of a percent) of the validation codes under each. Every candidate
uses only integers the decoder already has before it decodes a stage: the codes of the previous stage of this
frame (any position) and the previous frame's codes (any position)."""
from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from eval.compare import validation_clips
from neuralcodec import load_codec
from neuralcodec.coding import FrameCoder, stage_contexts
from neuralcodec.training.export import training_clips


def nonzero_3x3(a: np.ndarray) -> np.ndarray:
    """Number of nonzero entries in the 3x3 neighbourhood (itself included) of each position of a (h, w)."""
    nz = np.pad((a != 0).astype(np.int64), 1)
    h, w = a.shape
    return sum(nz[i:i + h, j:j + w] for i in range(3) for j in range(3))


ctx_base = stage_contexts   # the shipped context: [previous stage's code == 0] + 2 [previous frame's code == 0] (4)


def bucket(n: np.ndarray) -> np.ndarray:
    """0, 1-2, 3-5, 6-9 nonzero neighbours -> 0..3."""
    return np.digitize(n, [1, 3, 6])


def ctx_nbr_stage(codes, s, prev):
    """Base x the number of nonzero codes of the previous stage in the 3x3 neighbourhood, bucketed (16)."""
    c = ctx_base(codes, s, prev)
    if s > 0:
        c = c + 4 * bucket(nonzero_3x3(codes[s - 1]))
    return c


def ctx_nbr_prev(codes, s, prev):
    """Base x the number of nonzero codes of the previous frame at this stage in the 3x3 neighbourhood (16)."""
    c = ctx_base(codes, s, prev)
    if prev is not None and s < prev.shape[0]:
        c = c + 4 * bucket(nonzero_3x3(prev[s]))
    return c


def ctx_nbr_both(codes, s, prev):
    """Base x both neighbourhood buckets (64)."""
    c = ctx_base(codes, s, prev)
    if s > 0:
        c = c + 4 * bucket(nonzero_3x3(codes[s - 1]))
    if prev is not None and s < prev.shape[0]:
        c = c + 16 * bucket(nonzero_3x3(prev[s]))
    return c


CANDIDATES = {"base (shipped, 4)": (ctx_base, 4), "prev-stage 3x3 (16)": (ctx_nbr_stage, 16),
              "prev-frame 3x3 (16)": (ctx_nbr_prev, 16), "both 3x3 (64)": (ctx_nbr_both, 64)}


def collect(codec, clips, levels, gop):
    """[(ftype, codes (n, h, w), prev codes or None, level)] of the real coding path."""
    out = []
    for clip in clips:
        for q in levels:
            coder = FrameCoder(codec, clip.shape[2], clip.shape[1], codec.levels[q], gop)
            for frame in clip:
                prev = coder.prev_codes
                ftype, codes, _, _ = coder.analyse(frame)
                out.append((int(ftype), codes, prev, q))
    return out


def count(frames, fn, nctx, stages, k):
    n = np.zeros((2, stages, nctx, k), np.int64)
    for t, codes, prev, _ in frames:
        for s in range(codes.shape[0]):
            np.add.at(n[t, s], (fn(codes, s, prev).ravel(), codes[s].ravel()), 1)
    return n


def bits(frames, fn, n, prior=0.05):
    p = n + prior
    logp = np.log2(p / p.sum(-1, keepdims=True))
    out = {}
    for t, codes, prev, q in frames:
        b = 0.0
        for s in range(codes.shape[0]):
            b -= logp[t, s][fn(codes, s, prev).ravel(), codes[s].ravel()].sum()
        out[(t, q)] = out.get((t, q), 0.0) + b
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None)
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--levels", default="1,5,9,13,16")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", help="comma-separated indices of CANDIDATES to measure (default: all)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    codec = load_codec(a.model)
    cfg = codec.model.cfg
    levels = [int(q) for q in a.levels.split(",")]
    train = collect(codec, training_clips("data/", a.clips, 8, 192), list(codec.levels), 1000)
    val = collect(codec, list(validation_clips("data/train.ncpack").values()), levels, 32)
    print(f"statistics: {len(train)} frames ({a.clips} clips x 8 x {len(codec.levels)} levels); "
          f"validation: {len(val)} frames at levels {levels}")
    base = None
    names = list(CANDIDATES)
    if a.only:
        names = [names[int(i)] for i in a.only.split(",")]
    for name in names:
        fn, nctx = CANDIDATES[name]
        n = count(train, fn, nctx, cfg.num_stages, cfg.codebook_size)
        b = bits(val, fn, n)
        tot = sum(b.values())
        base = base or tot
        per = " ".join(f"q{q}:{sum(v for (t, qq), v in b.items() if qq == q) / 8e3:.1f}kB" for q in levels)
        ib = sum(v for (t, _), v in b.items() if t == 0)
        print(f"{name:22s} total {tot / 8e3:8.1f} kB ({100 * (tot / base - 1):+.2f} %)  I {ib / 8e3:.1f} kB  "
              f"P {(tot - ib) / 8e3:.1f} kB  {per}")
        # the oracle: tables counted on the validation codes themselves (how much is left in the tables)
        bo = sum(bits(val, fn, count(val, fn, nctx, cfg.num_stages, cfg.codebook_size)).values())
        print(f"{'':22s} oracle tables {bo / 8e3:8.1f} kB ({100 * (bo / base - 1):+.2f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
