"""BD-rate of the motion search's rate weight `lam` and uniform-field tolerance `tol` (estimate_motion's
arguments) against the defaults, on the gate's validation clips (preset medium, every quality, GOP 32).

    PYTHONPATH=. OMP_NUM_THREADS=1 python eval/results/motion_knobs/knobs_rd.py 0.002:0.003 0.005:0.003 ...

Each argument is lam:tol; the first is the anchor. The values are patched into estimate_motion here."""
import functools
import sys

import torch

import neuralcodec
import neuralcodec.model.codec_model as cm
from eval.compare import compare, experiment_clips, rd_points

torch.set_num_threads(1)
settings = [tuple(float(v) for v in a.split(":")) for a in sys.argv[1:]]
codec = neuralcodec.load_codec()
clips = experiment_clips("val")
original = cm.estimate_motion
res = {}
for lam, tol in settings:
    cm.estimate_motion = functools.partial(original, lam=lam, tol=tol)
    res[(lam, tol)] = rd_points(codec, clips)
for s in settings[1:]:
    bd = compare(res[s], res[settings[0]])
    per = "  ".join(f"{n} {bd['psnr_rgb']['clips'][n]['value']:+.2f}/{bd['msssim']['clips'][n]['value']:+.2f}%"
                    for n in clips)
    print(f"lam {s[0]} tol {s[1]}: mean {bd['psnr_rgb']['mean']['value']:+.2f}% / "
          f"{bd['msssim']['mean']['value']:+.2f}%  ({per})", flush=True)
