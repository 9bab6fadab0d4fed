"""Entropy-constrained code choice (Preset.ecq): BD-rate of each ecq against the plain nearest codes + zero rule.

    PYTHONPATH=. python eval/results/entropy/ecq.py --ecq 0,0.2,0.3,0.4 [--qualities 1,4,8,12,16] > ecq.txt

Encodes the gate's validation clips (eval.compare.validation_clips, GOP 32, the shipped model, the medium preset
with only ecq changed) at the given qualities, prints each setting's per-clip RD points and its BD-rates (PSNR-RGB,
MS-SSIM) against ecq 0, and whether the levels stay strictly monotone in size and quality. The decoder is the same
for every setting: ecq only changes which codes the encoder sends."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from eval.compare import compare, rd_points, validation_clips
from neuralcodec import load_codec
from neuralcodec.coding.frame_coder import PRESETS


def monotone(pts: list[dict]) -> bool:
    return all(b["bpp"] > a["bpp"] and b["psnr_rgb"] > a["psnr_rgb"] for a, b in zip(pts, pts[1:]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ecq", default="0,0.2,0.3,0.4", help="comma-separated ecq values (0 is the anchor)")
    p.add_argument("--qualities", help="comma-separated qualities (default: all)")
    p.add_argument("--pack", default="data/train.ncpack")
    p.add_argument("--model", default="ncodec-base")
    p.add_argument("--save", help="write every setting's RD points to this JSON file")
    a = p.parse_args(argv)
    codec = load_codec(a.model)
    clips = validation_clips(a.pack)
    qualities = [int(q) for q in a.qualities.split(",")] if a.qualities else list(codec.qualities)
    values = sorted({float(e) for e in a.ecq.split(",")} | {0.0})
    runs = {}
    for e in values:
        runs[e] = rd_points(codec, clips, qualities, preset=replace(PRESETS["medium"], ecq=e))
        runs[e].pop("preset")
    if a.save:
        with open(a.save, "w") as f:
            json.dump({str(e): r for e, r in runs.items()}, f, indent=1)
    print(f"{codec.name} {codec.card['version']} ({codec.sha256[:12]}), medium preset, qualities {qualities}")
    for e, r in runs.items():
        print(f"ecq {e:g}:")
        for clip, pts in r["clips"].items():
            line = ", ".join(f"{q['bpp']:.4f}/{q['psnr_rgb']:.2f}" for q in pts)
            print(f"  {clip}: bpp/PSNR-RGB {line}; monotone {monotone(pts)}")
        if e:
            res = compare(r, runs[0.0])
            print("  BD-rate vs ecq 0: " + "; ".join(
                f"{m} {v['mean']['value']:+.1f} % (" + ", ".join(f"{c} {x['value']:+.1f}" for c, x in
                                                              v["clips"].items()) + ")"
                for m, v in res.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
