"""Codes (n, h, w) of every frame the shipped model codes on the pack's natural clips of SPLIT, at qualities 1, 3, 5, 8
(20 frames of val, 30 of train), with the previous frame's codes, as a .npz of plain integer arrays for cost.py.

    PYTHONPATH=. OMP_NUM_THREADS=1 python eval/results/code_ctx/collect.py val /tmp/codes_val.npz"""
import sys

import numpy as np
import torch

from neuralcodec import load_codec
from neuralcodec.codec import FrameCoder
from neuralcodec.training.pack import iter_pack
torch.set_num_threads(1)
split, out = sys.argv[1], sys.argv[2]
codec = load_codec("ncodec-base")
recs = []
for item, frames in iter_pack("data/train.ncpack", split):
    if item.get("source") != "video": continue
    for q in (1, 3, 5, 8):
        h, w = frames.shape[1:3]
        coder = FrameCoder(codec, w, h, codec.levels[q], 32)
        for f in frames[:20 if split == "val" else 30]:
            prev = coder.prev_codes
            ft, codes, mv, _ = coder.analyse(f)
            recs.append((item['name'], q, int(ft), codes.astype(np.int16), None if prev is None else prev.astype(np.int16)))
    print(item['name'], len(recs), flush=True)
arrays = {}
for i, (name, q, ft, codes, prev) in enumerate(recs):
    arrays[f"{i:05d}|{name}|{q}|{ft}|codes"] = codes
    if prev is not None:
        arrays[f"{i:05d}|prev"] = prev
np.savez_compressed(out, **arrays)
