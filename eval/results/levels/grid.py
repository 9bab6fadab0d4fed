"""Rate and quality of every (stages, lam_i, lam_p) level on the pack's natural *training* clips (first 20
frames of bikes and bigbuckbunny, whole frames, GOP 32, medium preset): the grid that a level table is picked
from. Writes one JSON line per point. LEVELS, if given, is a JSON list of [stages, lam_i, lam_p] to measure
instead of the full grid.

    PYTHONPATH=. OMP_NUM_THREADS=1 python eval/results/levels/grid.py MODEL OUT.jsonl [LEVELS]"""
import itertools
import json
import sys
from fractions import Fraction

import numpy as np
import torch

from eval.metrics import msssim, psnr_rgb
from neuralcodec import load_codec
from neuralcodec.codec import Codec, Level
from neuralcodec.training.pack import iter_pack

torch.set_num_threads(1)
base = load_codec(sys.argv[1])
clips = {it["name"]: np.asarray(f[:20]) for it, f in iter_pack("data/train.ncpack", "train") if it["source"] == "video"}
grid = [Level(s, li, lp) for s, li, lp in itertools.product(range(1, base.model.cfg.num_stages + 1), (0.005,),
                                                            (0.5, 0.1, 0.02, 0.005, 0.001, 0.0))]
if len(sys.argv) > 3:
    grid = [Level(*v) for v in json.loads(sys.argv[3])]
with open(sys.argv[2], "w") as out:
    for lv in grid:
        codec = Codec(base.model, base.name, base.sha256, {1: lv})
        for name, frames in clips.items():
            data = codec.encode(frames, quality=1, gop=32, fps=Fraction(25))
            dec = np.asarray(codec.decode(data))
            t, h, w = frames.shape[:3]
            row = {"clip": name, "stages": lv.stages, "lam_i": lv.lam_i, "lam_p": lv.lam_p,
                   "bpp": 8 * len(data) / (t * h * w), "psnr_rgb": psnr_rgb(frames, dec), "msssim": msssim(frames, dec)[0]}
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(row, flush=True)
