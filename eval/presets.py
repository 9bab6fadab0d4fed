"""Encoder presets measured: BD-rate of each preset against medium and its encode frames/s.

    python -m eval.presets [--clips standard] [--max-frames 10] [--qualities 4,8,12,16] [--out FILE.json]

Every preset's stream is decoded by the same decoder; the BD-rate (PSNR-RGB and MS-SSIM, pchip) uses medium as
the anchor (negative = the preset needs fewer bits for the same quality).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .compare import compare, rd_points

PRESETS = ("fast", "medium", "slow", "veryslow")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.presets", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", nargs="+", default=["standard"])
    p.add_argument("--max-frames", type=int, default=10)
    p.add_argument("--qualities", default="4,8,12,16")
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--model", default=None)
    p.add_argument("--out", help="write all RD points and BD-rates to this JSON file")
    a = p.parse_args(argv)
    import neuralcodec
    from .clips import load_clips
    codec = neuralcodec.load_codec(a.model)
    clips = {c.name: np.asarray(c.frames) for c in load_clips(a.clips, a.max_frames, None, None)}
    qualities = [int(q) for q in a.qualities.split(",")]
    points = {name: rd_points(codec, clips, qualities, preset=name) for name in a.presets.split(",")}
    anchor = points.get("medium") or next(iter(points.values()))
    print(f"model {codec.name}, clips {', '.join(clips)} ({a.max_frames} frames each), qualities {qualities}; "
          f"BD-rate against {anchor['preset']}:")
    print(f"{'preset':10s} {'PSNR-RGB':>10s} {'MS-SSIM':>10s} {'encode frames/s':>16s}")
    summary = {}
    for name, pts in points.items():
        bd = compare(pts, anchor)
        fps = float(np.mean([p["encode_fps"] for c in pts["clips"].values() for p in c]))
        vals = [bd[m]["mean"].get("value") for m in ("psnr_rgb", "msssim")]
        summary[name] = {"bd_psnr_rgb": vals[0], "bd_msssim": vals[1], "encode_fps": fps}
        cells = [f"{v:+.1f} %" if v is not None else "n/a" for v in vals]
        print(f"{name:10s} {cells[0]:>10s} {cells[1]:>10s} {fps:16.2f}")
    if a.out:
        Path(a.out).write_text(json.dumps({"summary": summary, "points": points}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
