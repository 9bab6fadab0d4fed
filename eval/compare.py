"""The ship gate: BD-rate of a NEW model against an OLD one on the validation clips (PSNR-RGB and MS-SSIM).

    python -m eval.compare NEW OLD [--pack data/train.ncpack] [--save new.json]

NEW and OLD are shipped model names, model files, or JSON files of RD points written earlier with --save (so
a model whose code is gone can still be compared). The validation clips are the natural video clips of the
pack's "val" split (never trained on). Exit status: 0 when NEW wins (negative mean BD-rate on both metrics),
3 when it does not, 1 on errors.
"""
from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from .bdrate import average, bd_rate
from .metrics import msssim, psnr_rgb

EXIT_LOSES = 3
METRICS = ("psnr_rgb", "msssim")


def validation_clips(pack: str | Path, max_frames: int = 20) -> dict[str, np.ndarray]:
    """The pack's natural validation clips (source "video"), (T, H, W, 3) uint8, at most max_frames each."""
    from neuralcodec.training.pack import iter_pack
    clips = {}
    for item, frames in iter_pack(pack, "val"):
        if item.get("source") == "video":
            clips[str(item["name"])] = np.asarray(frames[:max_frames])
    if not clips:
        raise ValueError(f"{pack}: no natural validation clips")
    return clips


def experiment_clips(which: str = "val", pack: str | Path = "data/train.ncpack") -> dict[str, np.ndarray]:
    """The clips an encoder experiment runs on: "val", the gate's validation clips (20 frames), or "standard",
    the standard evaluation set (50 frames; measured on once a setting was chosen on "val")."""
    if which == "standard":
        from .clips import load_clips
        return {c.name: c.frames for c in load_clips(["standard"], max_frames=50)}
    if which != "val":
        raise ValueError(f"clip set must be val or standard, not {which!r}")
    return validation_clips(pack, 20)


def rd_points(codec, clips: dict[str, np.ndarray], qualities=None, gop: int = 32, **encode_args) -> dict:
    """Encode and decode every clip at every quality through the public API; bpp, PSNR-RGB, MS-SSIM and the
    encoder's frames/s. encode_args go to codec.encode (e.g. preset=...)."""
    import time
    qualities = list(qualities or codec.qualities)
    out = {"model": codec.name, "sha256": codec.sha256, "qualities": qualities, "clips": {}, **encode_args}
    for name, frames in clips.items():
        t, h, w = frames.shape[:3]
        pts = []
        for q in qualities:
            t0 = time.perf_counter()
            data = codec.encode(frames, quality=q, gop=gop, fps=Fraction(25), **encode_args)
            fps = t / (time.perf_counter() - t0)
            dec = np.asarray(codec.decode(data))
            pts.append({"quality": q, "bpp": 8 * len(data) / (t * h * w), "psnr_rgb": psnr_rgb(frames, dec),
                        "msssim": msssim(frames, dec)[0], "encode_fps": fps})
            print(f"  {codec.name} {name} q{q}: {pts[-1]['bpp']:.4f} bpp, {pts[-1]['psnr_rgb']:.2f} dB, "
                  f"MS-SSIM {pts[-1]['msssim']:.4f}", file=sys.stderr)
        out["clips"][name] = pts
    return out


def compare(new: dict, old: dict, metrics: tuple[str, ...] = METRICS) -> dict:
    """{metric: {"clips": {clip: bd}, "mean": bd}} of new against old (old is the anchor)."""
    res = {}
    for metric in metrics:
        per = {}
        for clip in sorted(set(new["clips"]) & set(old["clips"])):
            a, b = old["clips"][clip], new["clips"][clip]
            per[clip] = bd_rate([p["bpp"] for p in a], [p[metric] for p in a],
                                [p["bpp"] for p in b], [p[metric] for p in b])
        res[metric] = {"clips": per, "mean": average(per)}
    return res


def _points(spec: str, clips: dict[str, np.ndarray] | None, pack: str, qualities, **encode_args) -> dict:
    if spec.endswith(".json") and Path(spec).is_file():
        return json.loads(Path(spec).read_text())
    import neuralcodec
    codec = neuralcodec.load_codec(spec)
    return rd_points(codec, clips if clips is not None else validation_clips(pack), qualities, **encode_args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("new", help="model name, model file, or RD-points JSON")
    p.add_argument("old", help="model name, model file, or RD-points JSON (the anchor)")
    p.add_argument("--pack", default="data/train.ncpack", help="pack file holding the validation clips")
    p.add_argument("--frames", type=int, default=20, help="frames per validation clip (default 20)")
    p.add_argument("--qualities", help="comma-separated qualities to measure (default: all)")
    p.add_argument("--scenecut", type=float, metavar="DB",
                   help="the encoder's scene-cut threshold for models measured here (default: the codec's; 0 = off)")
    p.add_argument("--save", help="write NEW's RD points to this JSON file")
    p.add_argument("--save-old", help="write OLD's RD points to this JSON file")
    a = p.parse_args(argv)
    qualities = [int(x) for x in a.qualities.split(",")] if a.qualities else None
    try:
        needs_clips = not all(s.endswith(".json") and Path(s).is_file() for s in (a.new, a.old))
        clips = validation_clips(a.pack, a.frames) if needs_clips else None
        encode_args = {} if a.scenecut is None else {"scenecut": a.scenecut}
        new = _points(a.new, clips, a.pack, qualities, **encode_args)
        old = _points(a.old, clips, a.pack, qualities, **encode_args)
    except (OSError, ValueError) as e:
        print(f"compare: error: {e}", file=sys.stderr)
        return 1
    for path, pts in ((a.save, new), (a.save_old, old)):
        if path:
            Path(path).write_text(json.dumps(pts, indent=1))
    res = compare(new, old)
    print(f"BD-rate of {new['model']} ({new['sha256'][:12]}) against {old['model']} ({old['sha256'][:12]}), "
          f"validation clips {', '.join(sorted(new['clips']))} (negative = NEW needs fewer bits):")
    wins = True
    for metric, r in res.items():
        per = ", ".join(f"{c} {_fmt(v)}" for c, v in r["clips"].items())
        print(f"  {metric:9s} mean {_fmt(r['mean'])}   ({per})")
        v = r["mean"].get("value")
        wins = wins and v is not None and v < 0
    print("NEW wins: ship it" if wins else "NEW does not win: keep OLD")
    return 0 if wins else EXIT_LOSES


def _fmt(r: dict) -> str:
    v = r.get("value")
    return f"{v:+.1f} %" if v is not None else f"n/a ({r.get('reason')})"


if __name__ == "__main__":
    sys.exit(main())
