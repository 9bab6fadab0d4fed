"""Write the run's outputs: results JSON (strict JSON; non-finite floats as strings) and the results.md table."""
from __future__ import annotations

import json
import math
import platform
import sys
from importlib import metadata
from pathlib import Path

from eval.metrics import DEFINITIONS
from eval.plot import LABELS

PACKAGES = ("ncodec", "numpy", "torch", "av", "pytorch-msssim", "vmaf-torch", "cvvdp", "bjontegaard", "matplotlib",
            "scikit-video", "pillow")


def versions() -> dict:
    """Python, platform and package versions (None for packages not installed)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        import torch

        out["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return out


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalars
        return _jsonable(obj.item())
    return obj


def write_json(results: dict, path: Path) -> Path:
    """Write results as strict JSON (inf/nan floats become the strings 'inf'/'-inf'/'nan')."""
    path.write_text(json.dumps(_jsonable(results), indent=1, allow_nan=False) + "\n")
    return path


def _fmt_bd(r: dict | None, footnotes: list[str]) -> str:
    if r is None:
        return "-"
    cell = "n/a" if r.get("value") is None else f"{r['value']:+.1f}%"
    if r.get("reason"):
        footnotes.append(r["reason"])
        cell += f" [{len(footnotes)}]"
    return cell


def _fmt(v, spec: str) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, spec)


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def markdown(results: dict, images: list[str]) -> str:
    """results.md: settings, BD-rate tables (vs the reference), speeds, and the RD points."""
    bd = results["bd_rates"]
    clips = [c["name"] for c in results["clips"]]
    lines = ["# ncodec rate-distortion results", ""]
    lines.append(f"Created {results['created']} with `{results['command']}`.")
    lines.append("")
    for c in results["clips"]:
        notes = f" ({'; '.join(c['notes'])})" if c.get("notes") else ""
        lines.append(f"- clip **{c['name']}**: {c['width']}x{c['height']}, {c['frames']} frames at {c['fps']} fps, "
                     f"GOP {c.get('gop')}{notes}")
    if "ncodec" in results["codecs"]:
        n = results["codecs"]["ncodec"]
        lines.append(f"- ncodec model `{n['model']}` (ncodec {n['ncodec_version']}), qualities {n['sweep']['quality']}")
    lines.append(f"- metrics: {', '.join(results['settings']['metrics'])}; quick mode: {results['settings']['quick']}")
    lines += ["", f"## BD-rate vs {bd['reference']} ({bd['method']}, rate in bpp; negative = fewer bits)", ""]
    footnotes: list[str] = []
    if not bd.get("metrics"):
        lines.append(f"No BD-rates: {bd.get('reason', 'no data')}.")
    for key, per_codec in bd.get("metrics", {}).items():
        lines += [f"### {LABELS.get(key, key)}", "", "| codec | " + " | ".join(clips) + " | average |",
                  "|---" * (len(clips) + 2) + "|"]
        for codec, r in per_codec.items():
            cells = [_fmt_bd(r["per_clip"].get(c), footnotes) for c in clips] + [_fmt_bd(r["average"], footnotes)]
            lines.append(f"| {codec} | " + " | ".join(cells) + " |")
        lines.append("")
    if footnotes:
        lines += ["Notes:", ""] + [f"{i}. {t}" for i, t in enumerate(footnotes, 1)] + [""]
    lines += ["## Speed (mean frames/s over the sweep, this machine)", "", "| codec | clip | encode fps | decode fps |",
              "|---|---|---|---|"]
    for codec in results["codecs"]:
        for clip in clips:
            pts = [p for p in results["points"] if p["codec"] == codec and p["clip"] == clip]
            if pts:
                enc = _mean([p.get("encode_fps") for p in pts])
                dec = _mean([p.get("decode_fps") for p in pts])
                lines.append(f"| {codec} | {clip} | {_fmt(enc, '.1f')} | {_fmt(dec, '.1f')} |")
    keys = [k for k in ("psnr_rgb", "psnr_yuv", "msssim", "vmaf", "cvvdp") if any(k in p for p in results["points"])]
    abr = [p for p in results["points"] if "rate_error" in p]
    if abr:
        lines += ["", "## Rate control (target bitrate; error = achieved / target - 1)", "",
                  "| clip | codec | target kbit/s | achieved kbit/s | error | " + " | ".join(keys) + " |",
                  "|---" * (5 + len(keys)) + "|"]
        for p in abr:
            vals = [_fmt(p.get(k), ".4f" if k == "msssim" else ".2f") for k in keys]
            lines.append(f"| {p['clip']} | {p['codec']} | {p['target_kbps']:.1f} | {p['kbps']:.1f} | "
                         f"{p['rate_error']:+.1%} | " + " | ".join(vals) + " |")
    lines += ["", "## RD points", "", "| clip | codec | setting | bpp | kbit/s | " + " | ".join(keys) + " |",
              "|---" * (5 + len(keys)) + "|"]
    for p in results["points"]:
        vals = [_fmt(p.get(k), ".4f" if k == "msssim" else ".2f") for k in keys]
        lines.append(f"| {p['clip']} | {p['codec']} | {p['param']} {p['value']} | {p['bpp']:.4f} | "
                     f"{p['kbps']:.1f} | " + " | ".join(vals) + " |")
    if results.get("failures"):
        lines += ["", "## Failed points", ""] + [f"- {f['clip']} {f['codec']} {f['value']}: {f['error']}"
                                                 for f in results["failures"]]
    lines += ["", "## Metric definitions", ""] + [f"- **{k}**: {v}" for k, v in DEFINITIONS.items()]
    if images:
        lines += ["", "## Plots", ""] + [f"![{Path(i).stem}]({Path(i).name})" for i in images]
    return "\n".join(lines) + "\n"
