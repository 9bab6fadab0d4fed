"""Run ncodec through its public API (neuralcodec.load_codec / encode / decode) at chosen quality levels."""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

SIZE_DEFINITION = "len() of the complete .ncv stream returned by codec.encode (stream header included)"


@dataclass
class NcodecResult:
    """Decoded frames and rate/timing of one ncodec quality level."""

    decoded: np.ndarray
    nbytes: int
    encode_s: float
    decode_s: float
    header: dict


def load(model: str | None = None):
    """Load the shipped default model (or a named/path model) offline."""
    import neuralcodec

    if not hasattr(neuralcodec, "load_codec"):
        raise ValueError("neuralcodec.load_codec is not available in this checkout; run without the ncodec codec")
    return neuralcodec.load_codec(model) if model else neuralcodec.load_codec()


def describe(codec) -> dict:
    """Model name, quality levels and package version."""
    import neuralcodec

    return {"model": codec.name, "qualities": list(codec.qualities), "default_quality": codec.default_quality,
            "ncodec_version": getattr(neuralcodec, "__version__", "unknown")}


def pick_qualities(codec, quick: bool) -> list[int]:
    """All quality levels, or in quick mode the lowest, default and highest."""
    qs = list(codec.qualities)
    if not quick or len(qs) <= 3:
        return qs
    return sorted({qs[0], codec.default_quality, qs[-1]})


def _header_dict(data: bytes, codec) -> dict:
    hdr = codec.stream_decoder(io.BytesIO(data)).header
    out = {}
    for key in ("width", "height", "fps", "frame_count", "quality", "gop", "model_name", "model_hash"):
        v = getattr(hdr, key, None)
        out[key] = v.hex() if isinstance(v, (bytes, bytearray)) else (str(v) if isinstance(v, Fraction) else v)
    return out


def warm_up(codec, frames: np.ndarray, fps: Fraction) -> None:
    """Untimed encode+decode of the first 2 frames, so one-time costs (imports, caches) stay out of the speeds."""
    codec.decode(codec.encode(frames[:2], fps=Fraction(fps)))


def encode_decode(codec, frames: np.ndarray, quality: int | None, fps: Fraction, gop: int | None,
                  bitrate: float | None = None) -> NcodecResult:
    """Encode the clip at one quality level, or with rate control at a bitrate (bits/s), and decode it back (both
    timed)."""
    t0 = time.perf_counter()
    data = codec.encode(frames, quality=quality, gop=gop, fps=Fraction(fps), bitrate=bitrate)
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoded = np.asarray(codec.decode(data))
    decode_s = time.perf_counter() - t0
    if decoded.shape != frames.shape or decoded.dtype != np.uint8:
        raise RuntimeError(f"ncodec {f'q{quality}' if bitrate is None else f'{bitrate:.0f} bit/s'}: decoded "
                           f"{decoded.shape} {decoded.dtype}, expected {frames.shape} uint8")
    return NcodecResult(decoded=decoded, nbytes=len(data), encode_s=encode_s, decode_s=decode_s,
                        header=_header_dict(data, codec))
