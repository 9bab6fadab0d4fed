"""RD-curve plots (PNG, matplotlib Agg): one figure per metric, all codecs, per clip and averaged over clips."""
from __future__ import annotations

import math
import re
from pathlib import Path

from eval.metrics import UNITS

LABELS = {"psnr_rgb": "PSNR-RGB", "psnr_yuv": "PSNR-YUV (6:1:1)", "msssim": "MS-SSIM (RGB)",
          "vmaf": "VMAF", "cvvdp": "ColorVideoVDP"}
AVERAGE = "mean-over-clips"


def safe_name(name: str) -> str:
    """A file-name-safe version of a clip name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "clip"


def curves(points: list[dict], key: str, clip: str | None) -> dict[str, list[tuple[float, float]]]:
    """codec -> [(bpp, metric)] sorted by bpp; clip None averages bpp and metric over clips per sweep value
    (only sweep values present in every clip are kept)."""
    out: dict[str, list[tuple[float, float]]] = {}
    codecs = list(dict.fromkeys(p["codec"] for p in points))
    clips = list(dict.fromkeys(p["clip"] for p in points))
    for codec in codecs:
        pts = [p for p in points if p["codec"] == codec and math.isfinite(p.get(key, math.nan))]
        if clip is not None:
            xy = [(p["bpp"], p[key]) for p in pts if p["clip"] == clip]
        else:
            xy = []
            for v in dict.fromkeys(p["value"] for p in pts):
                same = [p for p in pts if p["value"] == v]
                if len(same) == len(clips):
                    xy.append((sum(p["bpp"] for p in same) / len(same), sum(p[key] for p in same) / len(same)))
        if xy:
            out[codec] = sorted(xy)
    return out


def plot_rd(points: list[dict], key: str, clip: str | None, path: Path, title: str) -> Path | None:
    """Write one RD figure; returns its path, or None when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(points, key, clip)
    if not data:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    for codec, xy in data.items():
        xs, ys = zip(*xy)
        ax.plot(xs, ys, marker="o", markersize=4, linewidth=2.2 if codec == "ncodec" else 1.3, label=codec)
    unit = UNITS.get(key, "")
    ax.set_xscale("log")
    ax.set_xlabel("bits per pixel (log scale)")
    ax.set_ylabel(f"{LABELS.get(key, key)}{f' [{unit}]' if unit else ''}")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_all(points: list[dict], keys: list[str], clip_names: list[str], out_dir: Path) -> list[Path]:
    """All figures: rd_<clip>_<metric>.png for each clip and, for several clips, rd_mean-over-clips_<metric>.png."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key in keys:
        for clip in clip_names:
            p = plot_rd(points, key, clip, out_dir / f"rd_{safe_name(clip)}_{key}.png",
                        f"{clip}: {LABELS.get(key, key)}")
            if p:
                written.append(p)
        if len(clip_names) > 1:
            p = plot_rd(points, key, None, out_dir / f"rd_{AVERAGE}_{key}.png",
                        f"average of {len(clip_names)} clips: {LABELS.get(key, key)}")
            if p:
                written.append(p)
    return written
