"""Command line: `python -m eval --clips standard --out eval/results/ [--quick] [--codecs ...] [--metrics ...]`."""
from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time
import warnings
from fractions import Fraction
from pathlib import Path

QUICK_FRAMES = 6


def build_parser() -> argparse.ArgumentParser:
    """Argument parser."""
    p = argparse.ArgumentParser(prog="python -m eval", description="Rate-distortion evaluation of ncodec against "
                                "x264 (low-delay and default), x265 and SVT-AV1, with BD-rates vs x264-lowdelay.")
    p.add_argument("--clips", nargs="+", default=["standard"], metavar="CLIP",
                   help="'standard' (carphone + last 50 frames of bikes), video files, or folders of PNG frames")
    p.add_argument("--out", default="eval/results", help="output folder (JSON, results.md, PNG plots)")
    p.add_argument("--codecs", default="all",
                   help="comma list of ncodec,x264-lowdelay,x264,x265,svtav1 or 'all' (those five); ncodec-abr adds "
                        "rate-controlled points: ncodec --bitrate and x264 low-delay ABR at the same targets")
    p.add_argument("--metrics", default=None,
                   help="comma list of psnr,msssim,vmaf,cvvdp, or 'fast' / 'all' (default: all; fast with --quick)")
    p.add_argument("--quick", action="store_true",
                   help=f"smoke run: {QUICK_FRAMES} frames (unless --max-frames), 3 points per codec, fast metrics")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="use at most N frames of each clip")
    p.add_argument("--size", default=None, metavar="WxH", help="downscale every clip to WxH (Lanczos)")
    p.add_argument("--fps", default=None,
                   help="frame rate of the given clips (default: the file's own; 30 for PNG folders)")
    p.add_argument("--gop", type=int, default=None, metavar="N",
                   help="I-frame period for ncodec and x264-lowdelay (default: ncodec's default GOP)")
    p.add_argument("--model", default=None, help="ncodec model name or .safetensors path (default: shipped model)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _parse_fps(spec: str | None) -> Fraction | None:
    if spec is None:
        return None
    try:
        fps = Fraction(spec)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"bad --fps {spec!r}: expected a number like 30 or 30000/1001") from None
    if not 0 < fps <= 1000:
        raise ValueError(f"bad --fps {spec!r}: must be in (0, 1000]")
    return fps


def run_cli(argv: list[str]) -> dict:
    """Parse arguments, run the evaluation, write outputs; returns the results dict."""
    from eval import metrics as metrics_mod
    from eval import plot, report, runner
    from eval.clips import load_clips, parse_size

    args = build_parser().parse_args(argv)
    codecs = runner.parse_codecs(args.codecs)
    metric_names = metrics_mod.parse_metrics(args.metrics or ("fast" if args.quick else "all"))
    if args.max_frames is not None and not 1 <= args.max_frames <= 100000:
        raise ValueError("--max-frames must be between 1 and 100000")
    if args.gop is not None and not 1 <= args.gop <= 100000:
        raise ValueError("--gop must be between 1 and 100000")
    max_frames = args.max_frames or (QUICK_FRAMES if args.quick else None)
    size = parse_size(args.size) if args.size else None
    fps = _parse_fps(args.fps)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")

    clips = load_clips(args.clips, max_frames, size, fps)
    out.mkdir(parents=True, exist_ok=True)
    cfg = runner.RunConfig(codecs=codecs, metrics=metric_names, quick=args.quick, gop=args.gop, model=args.model)
    t0 = time.perf_counter()
    res = runner.run(clips, cfg, progress=not args.no_progress)
    results = {
        "schema": "ncodec-eval/1",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m eval " + " ".join(shlex.quote(a) for a in argv),
        "settings": {"quick": args.quick, "codecs": list(codecs), "metrics": list(metric_names),
                     "max_frames": max_frames, "size": args.size, "gop": args.gop or "ncodec default",
                     "bd_reference": runner.REFERENCE, "bd_method": "pchip", "out": str(out)},
        "versions": report.versions(),
        "metric_definitions": metrics_mod.DEFINITIONS,
        "notes": ["non-finite floats (PSNR of identical frames) are written as the strings 'inf'/'nan'",
                  "encode/decode fps are wall-clock on the machine that ran this, including RGB<->YUV conversion "
                  "for the anchors; they are only comparable within one run"],
        **res,
        "elapsed_s": None,
    }
    images = plot.plot_all(results["points"], runner.rd_keys(results["points"]), [c.name for c in clips], out)
    results["plots"] = [p.name for p in images]
    results["elapsed_s"] = round(time.perf_counter() - t0, 2)
    report.write_json(results, out / "results.json")
    (out / "results.md").write_text(report.markdown(results, [str(p) for p in images]))
    return results


def _quiet_library_warnings() -> None:
    """Hide known-harmless warnings from dependencies that would clutter the progress output."""
    warnings.filterwarnings("ignore", message="The value of the smallest subnormal")  # numpy after flush_denormal
    warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated")  # compressai import
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def main(argv: list[str] | None = None) -> int:
    """CLI entry; prints a one-line error (no traceback) and returns non-zero on failure."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _quiet_library_warnings()
    try:
        results = run_cli(argv)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except ValueError as e:
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except Exception as e:  # unexpected: still one line, no traceback
        print(f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
        return 1
    n_fail = len(results["failures"])
    out = Path(results["settings"]["out"])
    print(f"wrote {out / 'results.json'}, {out / 'results.md'} and {len(results['plots'])} plots "
          f"({len(results['points'])} points, {n_fail} failed, {results['elapsed_s']} s)")
    return 1 if n_fail and not results["points"] else 0
