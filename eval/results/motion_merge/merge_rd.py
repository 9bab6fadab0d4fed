"""BD-rate of motion merging (Preset.motion_merge, the tolerance in mean absolute luma) against none.

    PYTHONPATH=. OMP_NUM_THREADS=1 python eval/results/motion_merge/merge_rd.py 0,0.0005,0.001,0.003 [val|standard]

The first tolerance is the anchor. 'val' (default): the gate's validation clips (the pack's val split, 20
frames); 'standard': the standard set (50 frames). Preset medium otherwise, every quality, GOP 32, the shipped
model. Prints the run time per tolerance, then per clip BD-rate PSNR-RGB / MS-SSIM, quality 1 before -> after and
the mean encode frames/s."""
import sys
import time

import numpy as np
import torch

import neuralcodec
from eval.compare import compare, experiment_clips, rd_points
from neuralcodec.codec import Preset

torch.set_num_threads(1)
tols = [float(t) for t in sys.argv[1].split(",")]
which = sys.argv[2] if len(sys.argv) > 2 else "val"
codec = neuralcodec.load_codec()
clips = experiment_clips(which)
res = {}
for t in tols:
    t0 = time.time()
    res[t] = rd_points(codec, clips, preset=Preset("medium", motion_merge=t))
    print("merge", t, f"{time.time() - t0:.0f} s", flush=True)
base = res[tols[0]]
for t in tols[1:]:
    bd = compare(res[t], base)
    for name in clips:
        a, b = res[t]["clips"][name], base["clips"][name]
        out = []
        for met in ("psnr_rgb", "msssim"):
            r = bd[met]["clips"][name]
            out.append(f"{r['value']:+.2f}%" if r["value"] is not None else str(r["reason"]))
        lo = f"q1 {b[0]['bpp']:.4f}->{a[0]['bpp']:.4f} bpp {b[0]['psnr_rgb']:.2f}->{a[0]['psnr_rgb']:.2f} dB"
        print(t, name, *out, lo, f"{np.mean([x['encode_fps'] for x in a]):.2f} fps", flush=True)
