"""Estimated motion bytes of fields written by collect.py under a motion coding, with or without the x/y
context: tables fitted on the train split's fields (add-0.05 smoothing, as the export), code lengths summed on
the val split's (MV_FIELD frames only; zero and uniform fields cost the same in every scheme).

    PYTHONPATH=. python eval/results/motion_ctx/cost.py TRAIN.npz VAL.npz CODING"""
import sys

import numpy as np

from neuralcodec.model.motion import mv_to_residual

A, HALF = 129, 64


def load(path):
    d = np.load(path)
    return {k: d[k] for k in d.files}


def symbols(fields, coding, xy):
    for mv in fields.values():
        if not mv.any() or (mv == mv[:, :1, :1]).all():
            continue
        r = mv_to_residual(mv, coding)
        ctx = np.zeros_like(r)
        ctx[1] = 1 + xy * (r[0] == 0)
        yield ctx.ravel(), np.clip(r + HALF, 0, A - 1).ravel()


def cost(train, val, coding, xy):
    n = np.zeros((3, A))
    for c, s in symbols(train, coding, xy):
        np.add.at(n, (c, s), 1)
    p = (n + 0.05) / (n + 0.05).sum(1, keepdims=True)
    return sum(-np.log2(p[c, s]).sum() for c, s in symbols(val, coding, xy)) / 8


train, val, coding = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
for xy in (0, 1):
    per = {clip: cost(train, {k: v for k, v in val.items() if k.startswith(clip + "|")}, coding, xy)
           for clip in sorted({k.split("|")[0] for k in val})}
    print(f"coding {coding}, x/y context {xy}: {cost(train, val, coding, xy):.0f} bytes",
          " ".join(f"{c} {v:.0f}" for c, v in per.items()))
