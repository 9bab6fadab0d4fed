"""BD-rate of coding I-frames k levels above the P-frames' quality (an encoder-side choice: a packet's stage
count is its own) against k = 0.

    PYTHONPATH=. OMP_NUM_THREADS=1 python eval/results/iboost/iboost_rd.py 0,1,2 [val|standard]

The first k is the anchor. Clips as in eval/results/motion_merge/merge_rd.py; preset medium, every quality,
GOP 32, the shipped model. The boost is patched into FrameCoder.choose here (experiment only)."""
import sys
import time

import torch

import neuralcodec
from eval.compare import compare, experiment_clips, rd_points
from neuralcodec.codec import FrameCoder, FrameType

torch.set_num_threads(1)
ks = [int(t) for t in sys.argv[1].split(",")]
which = sys.argv[2] if len(sys.argv) > 2 else "val"
codec = neuralcodec.load_codec()
clips = experiment_clips(which)
qs = sorted(codec.levels)
BOOST = [0]
_choose = FrameCoder.choose


def choose(self, a, level):
    if a.ftype == FrameType.I and BOOST[0]:
        q = next(q for q, lv in codec.levels.items() if lv == level)
        level = codec.levels[qs[min(len(qs) - 1, qs.index(q) + BOOST[0])]]
    return _choose(self, a, level)


FrameCoder.choose = choose
res = {}
for k in ks:
    BOOST[0] = k
    t0 = time.time()
    res[k] = rd_points(codec, clips)
    print("boost", k, f"{time.time() - t0:.0f} s", flush=True)
for k in ks[1:]:
    bd = compare(res[k], res[ks[0]])
    for name in clips:
        out = []
        for met in ("psnr_rgb", "msssim"):
            r = bd[met]["clips"][name]
            out.append(f"{r['value']:+.2f}%" if r["value"] is not None else str(r["reason"]))
        a, b = res[k]["clips"][name], res[ks[0]]["clips"][name]
        rng = f"q1 {b[0]['bpp']:.4f}->{a[0]['bpp']:.4f} bpp, q8 {b[-1]['bpp']:.4f}->{a[-1]['bpp']:.4f} bpp"
        print(k, name, *out, rng, flush=True)
    print(k, "mean", *(f"{bd[m]['mean']['value']:+.2f}%" for m in ("psnr_rgb", "msssim")), flush=True)
