"""Collect the motion fields the encoder sends (shipped model, medium preset) on natural clips of the pack.

    PYTHONPATH=. python eval/results/motion_ctx/collect.py SPLIT OUT.npz [merge] [mv_coding]

Writes one (2, bh, bw) int field per P-frame, per clip and quality (1, 4, 8), at most 20 frames per clip (40 of
the train split). mv_coding (0 left, 1 median) sets whose prediction the merge targets."""
import sys

import numpy as np

from neuralcodec import load_codec
from neuralcodec.codec import FrameCoder, PRESETS, DEFAULT_PRESET
from neuralcodec.training.pack import iter_pack
from dataclasses import replace

split, out = sys.argv[1], sys.argv[2]
merge = float(sys.argv[3]) if len(sys.argv) > 3 else None
codec = load_codec("ncodec-base")
if len(sys.argv) > 4:
    from neuralcodec.codec import Codec
    from neuralcodec.training.export import build_model
    model = build_model(codec.model.cfg, codec.model.state_dict(), int(sys.argv[4]))
    codec = Codec(model, codec.name, codec.sha256, codec.levels)
preset = PRESETS[DEFAULT_PRESET] if merge is None else replace(PRESETS[DEFAULT_PRESET], motion_merge=merge)
fields = {}
for item, frames in iter_pack("data/train.ncpack", split):
    if item.get("source") != "video":
        continue
    for q in (1, 4, 8):
        h, w = frames.shape[1:3]
        coder = FrameCoder(codec, w, h, codec.levels[q], 32, preset=preset)
        for t, f in enumerate(frames[:20 if split == "val" else 40]):
            _, _, mv, _ = coder.analyse(f)
            if mv is not None:
                fields[f"{item['name']}|{item.get('start', 0)}|q{q}|{t}"] = mv
    print(item["name"], frames.shape, len(fields), flush=True)
np.savez_compressed(out, **fields)
