"""Encoder presets: BD-rate of each preset against medium, and its encode speed.

    python -m eval.presets [--clips standard] [--max-frames 50] [--presets fast,medium,slow,veryslow] [--out DIR]
    (DIR: default eval/results/presets/vVERSION)

Every clip is coded at every quality with each preset (GOP 32, scene cuts on) through the public API; the table
gives the BD-rate (PSNR-RGB and MS-SSIM, negative = fewer bits for the same quality) against medium and the mean
encode frames/s over the qualities (wall clock, this machine, torch's thread setting). Each preset's RD points
are written to DIR/PRESET.json, and an existing one is read instead of measured again (delete it to re-measure),
so a long run can be done one preset at a time.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .compare import compare, rd_points

REFERENCE = "medium"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.presets", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", nargs="+", default=["standard"], help="'standard', video files or PNG folders")
    p.add_argument("--max-frames", type=int, default=50, metavar="N")
    p.add_argument("--presets", default="fast,medium,slow,veryslow")
    p.add_argument("--model", default=None, help="model name or file (default: the shipped model)")
    p.add_argument("--out", help="folder for the RD points and table (default eval/results/presets/vVERSION, the "
                                 "model's version: other models' measurements stay as they are)")
    a = p.parse_args(argv)
    import neuralcodec
    from neuralcodec.codec import PRESETS

    from .clips import load_clips
    names = [n.strip() for n in a.presets.split(",") if n.strip()]
    bad = [n for n in names if n not in PRESETS]
    if bad or REFERENCE not in names:
        print(f"presets: error: presets must include {REFERENCE} and be among {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    try:
        clips = {c.name: c.frames for c in load_clips(a.clips, a.max_frames)}
        codec = neuralcodec.load_codec(a.model) if a.model else neuralcodec.load_codec()
    except (OSError, ValueError) as e:
        print(f"presets: error: {e}", file=sys.stderr)
        return 1
    out = Path(a.out or f"eval/results/presets/v{codec.card['version']}")
    out.mkdir(parents=True, exist_ok=True)
    points = {}
    for name in names:
        path = out / f"{name}.json"
        if path.is_file() and json.loads(path.read_text()).get("sha256") == codec.sha256:
            points[name] = json.loads(path.read_text())
            continue
        points[name] = rd_points(codec, clips, preset=name)
        path.write_text(json.dumps(points[name], indent=1))
    rows = [f"BD-rate against preset {REFERENCE} ({codec.name}, {codec.sha256[:12]}), clips "
            f"{', '.join(clips)} ({a.max_frames} frames at most), GOP 32; encode frames/s per clip:", "",
            "| preset | PSNR-RGB | MS-SSIM | " + " | ".join(f"{c} PSNR / MS-SSIM" for c in clips)
            + " | " + " | ".join(f"{c} encode fps" for c in clips) + " |",
            "|---" * (3 + 2 * len(clips)) + "|"]
    for name in names:
        res = compare(points[name], points[REFERENCE])
        cells = [_fmt(res[m]["mean"]) for m in ("psnr_rgb", "msssim")]
        cells += [f"{_fmt(res['psnr_rgb']['clips'][c])} / {_fmt(res['msssim']['clips'][c])}" for c in clips]
        cells += [f"{np.mean([x['encode_fps'] for x in points[name]['clips'][c]]):.2f}" for c in clips]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(rows) + "\n"
    (out / "presets.md").write_text(f"Measured with `python -m eval.presets {' '.join(argv or sys.argv[1:])}`\n\n"
                                    + text)
    print(text, end="")
    return 0


def _fmt(r: dict) -> str:
    v = r.get("value")
    return f"{v:+.1f} %" if v is not None else "n/a"


if __name__ == "__main__":
    sys.exit(main())
