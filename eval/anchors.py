"""Conventional-codec anchors (x264 low-delay, x264, x265, SVT-AV1) run in memory through PyAV."""
from __future__ import annotations

import os
import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import numpy as np

SIZE_DEFINITION = ("sum of the encoder's output packet sizes (raw elementary stream: Annex-B H.264/HEVC with in-band "
                   "parameter sets, AV1 low-overhead OBUs; no container) plus codec extradata, if any, minus the "
                   "x264/x265 version-and-options SEI (user data, not needed to decode; removed from the stream "
                   "before decoding; its size is recorded per point as info_sei_bytes)")


@dataclass(frozen=True)
class AnchorSpec:
    """One anchor configuration: an encoder, its fixed options, and a CRF sweep."""

    name: str
    encoder: str
    decoder: str
    options: dict[str, str]
    crfs: tuple[int, ...]
    quick_crfs: tuple[int, ...]
    gop_note: str
    low_delay_keyint: bool = False  # keyint set to the GOP length (clip length unless --gop), scene cuts on
    notes: list[str] = field(default_factory=list)

    def options_for(self, crf: int, gop: int) -> dict[str, str]:
        """Exact encoder options for one sweep point."""
        opts = dict(self.options)
        opts["crf"] = str(crf)
        if self.low_delay_keyint:
            opts["x264-params"] = f"keyint={gop}:scenecut=40"
        return opts


ANCHORS: dict[str, AnchorSpec] = {
    "x264-lowdelay": AnchorSpec(
        name="x264-lowdelay", encoder="libx264", decoder="h264",
        options={"preset": "medium", "tune": "zerolatency", "bframes": "0"},
        crfs=(17, 22, 27, 32, 37, 42, 47), quick_crfs=(22, 32, 42),
        gop_note="keyint = the GOP with x264's own scene-cut detection (scenecut=40, min-keyint auto): an I-frame "
                 "at least every GOP frames and at scene cuts, all other frames P (no B-frames), like ncodec's "
                 "I/P structure with its --scenecut",
        low_delay_keyint=True),
    "x264": AnchorSpec(
        name="x264", encoder="libx264", decoder="h264", options={"preset": "medium"},
        crfs=(17, 22, 27, 32, 37, 42, 47), quick_crfs=(22, 32, 42),
        gop_note="x264 defaults: keyint 250 with scenecut, B-frames on"),
    "x265": AnchorSpec(
        name="x265", encoder="libx265", decoder="hevc",
        options={"preset": "medium", "x265-params": "log-level=error"},
        crfs=(17, 22, 27, 32, 37, 42, 47), quick_crfs=(22, 32, 42),
        gop_note="x265 defaults: keyint 250 with scenecut, B-frames on"),
    "svtav1": AnchorSpec(
        name="svtav1", encoder="libsvtav1", decoder="libdav1d", options={"preset": "8"},
        crfs=(20, 28, 35, 42, 49, 56, 63), quick_crfs=(28, 42, 56),
        gop_note="SVT-AV1 defaults (random-access prediction structure, default keyint)",
        notes=["preset 8: a fast preset commonly used for evaluation on CPU (0 = slowest/best, 13 = fastest)"]),
}


@dataclass
class AnchorResult:
    """Decoded frames and rate/timing of one anchor sweep point."""

    decoded: np.ndarray
    nbytes: int
    encode_s: float
    decode_s: float
    options: dict[str, str]
    encoder_info: str
    info_sei_bytes: int


_INFO_TAGS = (b"x264 - core", b"x265 (build")
_START = re.compile(b"\x00\x00\x01")


def _encoder_info_from_packet(data: bytes) -> str:
    """The version/options string x264 and x265 embed in an SEI of the first packet ('' if none)."""
    for tag in _INFO_TAGS:
        i = data.find(tag)
        if i >= 0:
            end = data.find(b"\0", i)
            text = data[i:end if end >= 0 else len(data)].decode("ascii", "replace")
            return "".join(c for c in text if c.isprintable() and c != "\ufffd").strip()
    return ""


def strip_info_sei(data: bytes, hevc: bool) -> bytes:
    """Remove the encoder version/options SEI NAL unit(s) from an Annex-B packet; other NAL units are kept as-is."""
    if not any(tag in data for tag in _INFO_TAGS):
        return data
    starts = [m.start() for m in _START.finditer(data)]
    # a NAL unit begins at its start code (including a leading zero byte of a 4-byte start code)
    bounds = [s - 1 if s > 0 and data[s - 1] == 0 else s for s in starts]
    out = [data[:bounds[0]]] if bounds else [data]
    for i, (b, s) in enumerate(zip(bounds, starts)):
        chunk = data[b:bounds[i + 1] if i + 1 < len(bounds) else len(data)]
        hdr = data[s + 3] if s + 3 < len(data) else 0
        is_sei = ((hdr >> 1) & 0x3F) in (39, 40) if hevc else (hdr & 0x1F) == 6
        if not (is_sei and any(tag in chunk for tag in _INFO_TAGS)):
            out.append(chunk)
    return b"".join(out)


@contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Capture fd-2 output (SVT-AV1 logs straight to stderr, bypassing FFmpeg's logger)."""
    out: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


def _svt_version(log: str) -> str:
    m = re.search(r"SVT-AV1 Encoder Lib (v[\w.\-+]+)", log)
    return f"SVT-AV1 Encoder Lib {m.group(1)}" if m else ""


_AV1_DECODERS = ("libdav1d", "av1", "libaom-av1")


def decoder_name(spec: AnchorSpec) -> str:
    """The spec's decoder, or for AV1 the first available of libdav1d / FFmpeg's av1 / libaom-av1."""
    if spec.decoder not in _AV1_DECODERS:
        return spec.decoder
    import av

    for name in _AV1_DECODERS:
        try:
            av.Codec(name, "r")
            return name
        except Exception:  # av raises UnknownCodecError (a ValueError) for codecs not built in
            continue
    raise RuntimeError("no AV1 decoder (libdav1d, av1, libaom-av1) in this PyAV build")


def library_versions() -> dict:
    """PyAV / FFmpeg library versions."""
    import av

    return {"av": av.__version__, "av_library_versions": {k: ".".join(map(str, v)) for k, v in
                                                          av.library_versions.items()}}


def _encode(frames: np.ndarray, spec: AnchorSpec, opts: dict[str, str], fps: Fraction,
            packets: list[bytes]) -> tuple[float, bytes]:
    """Encode into packets (appended); returns (seconds, extradata)."""
    import av

    t, h, w, _ = frames.shape
    t0 = time.perf_counter()
    enc = av.CodecContext.create(spec.encoder, "w")
    enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
    enc.time_base = 1 / Fraction(fps)
    enc.framerate = Fraction(fps)
    enc.options = opts
    for i, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
        vf.pts = i
        packets += [bytes(p) for p in enc.encode(vf)]
    packets += [bytes(p) for p in enc.encode(None)]
    return time.perf_counter() - t0, bytes(enc.extradata or b"")


def abr_options(bitrate: float, gop: int) -> dict[str, str]:
    """x264 low-delay (the reference's options) at a target bitrate in bits/s instead of a CRF: one-pass ABR
    with a VBV buffer of one second at that rate (as ncodec's rate control), scene cuts on."""
    opts = dict(ANCHORS["x264-lowdelay"].options)
    kbps = max(1, round(bitrate / 1000))
    opts["b"] = str(int(round(bitrate)))
    opts["x264-params"] = f"keyint={gop}:scenecut=40:vbv-maxrate={kbps}:vbv-bufsize={kbps}"
    return opts


ABR_SPEC = AnchorSpec(name="x264-lowdelay-abr", encoder="libx264", decoder="h264", options={}, crfs=(), quick_crfs=(),
                      gop_note="as x264-lowdelay, at a target bitrate (ABR, VBV buffer of 1 s) instead of a CRF")


def encode_decode(frames: np.ndarray, spec: AnchorSpec, crf: int, fps: Fraction, gop: int,
                  bitrate: float | None = None) -> AnchorResult:
    """Encode RGB frames (RGB->yuv420p via swscale) with one anchor setting (a CRF, or with ABR_SPEC a bitrate in
    bits/s), decode back to RGB."""
    import av

    t = frames.shape[0]
    opts = abr_options(bitrate, gop) if bitrate is not None else spec.options_for(crf, gop)
    is_svt = spec.encoder == "libsvtav1"
    log_ctx = _captured_stderr() if is_svt else _nullctx()
    packets: list[bytes] = []
    log: list[str] = []
    try:
        with log_ctx as log:
            encode_s, extradata = _encode(frames, spec, opts, fps, packets)
    except Exception as e:
        errors = [ln.strip() for ln in "".join(log).splitlines() if "error" in ln.lower()]
        raise RuntimeError(f"{spec.encoder} failed: {e}" + (f" ({errors[-1]})" if errors else "")) from None
    info = _encoder_info_from_packet(packets[0]) if packets else ""
    raw_size = sum(map(len, packets))
    if spec.decoder in ("h264", "hevc"):
        packets = [strip_info_sei(p, spec.decoder == "hevc") for p in packets]
    if is_svt and log:
        info = _svt_version(log[0])
    t0 = time.perf_counter()
    dec = av.CodecContext.create(decoder_name(spec), "r")
    if extradata:
        dec.extradata = extradata
    out: list[np.ndarray] = []
    for data in packets + [None]:
        pkt = av.Packet(data) if data is not None else None
        out += [fr.to_ndarray(format="rgb24") for fr in dec.decode(pkt)]
    decode_s = time.perf_counter() - t0
    if len(out) != t:
        raise RuntimeError(f"{spec.name} {f'crf {crf}' if bitrate is None else f'{bitrate:.0f} bit/s'}: decoded "
                           f"{len(out)} frames, expected {t}")
    return AnchorResult(decoded=np.stack(out), nbytes=sum(map(len, packets)) + len(extradata),
                        encode_s=encode_s, decode_s=decode_s, options=opts, encoder_info=info,
                        info_sei_bytes=raw_size - sum(map(len, packets)))


@contextmanager
def _nullctx() -> Iterator[list[str]]:
    yield []
