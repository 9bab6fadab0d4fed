"""The codec API: frames <-> .ncv streams, frame by frame, on top of the model and the bitstream layer."""
from __future__ import annotations

import hashlib
import io
import os
from fractions import Fraction
from typing import BinaryIO, Iterable, Iterator

import numpy as np
import torch

from bitstream import BitstreamError, DecodeLimits, FrameType, Packet, StreamHeader, StreamReader, StreamWriter

from .coding import (CHUNKS, DEFAULT_PRESET, DEFAULT_SCENECUT, PRESETS, SCENECUT_MAX_PSNR, Analysis, EntropyCoder,
                     FrameCoder, Level, Preset, gain_levels)
from .model import LearnedRateModel
from .ratecontrol import RateControl, parse_bitrate

__all__ = ["DEFAULT_GOP", "DEFAULT_PRESET", "DEFAULT_SCENECUT", "PRESETS", "SCENECUT_MAX_PSNR", "Analysis", "Codec",
           "FrameCoder", "FrameType", "Level", "ModelError", "Preset", "StreamDecoder", "StreamEncoder",
           "file_sha256"]


class ModelError(ValueError):
    """Unknown model, bad model file, or a stream coded with other weights."""


DEFAULT_GOP = 32
PACKET_OVERHEAD = 7 + 4 * CHUNKS   # container bytes of a packet (FORMAT.md): frame type, quality, size, chunk sizes
FORMAT_VERSION = 3    # the .ncv version this codec writes and reads (bitstream/FORMAT.md); 1 and 2 held RVQ models


class StreamEncoder:
    """Writes frames one at a time into an .ncv stream on a binary file object."""

    def __init__(self, codec: "Codec", fileobj: BinaryIO, width: int, height: int, fps: Fraction,
                 quality: int, gop: int, frame_count: int = 0, scenecut: float = DEFAULT_SCENECUT,
                 preset: Preset = PRESETS[DEFAULT_PRESET], bitrate: float | None = None, frames_hint: int = 0):
        """quality 0 with a bitrate: rate control (each packet carries its quality)."""
        self.codec = codec
        self.rate = None if bitrate is None else RateControl(bitrate, fps, codec.qualities,
                                                                frame_count or max(0, int(frames_hint)))
        level = codec.levels[codec.default_quality if self.rate else quality]
        self.coder = FrameCoder(codec, width, height, level, gop, scenecut, preset)
        header = StreamHeader(width=width, height=height, fps=Fraction(fps), frame_count=frame_count,
                              quality=0 if self.rate else quality, gop=gop, model_name=codec.name,
                              model_hash=codec.model_hash, version=FORMAT_VERSION)
        self.writer = StreamWriter(fileobj, header)
        codec.entropy  # fail early if the model has no frozen tables
        self.quality = quality
        self.qualities: list[int] = []         # the quality of every frame written
        self.last_decoded: np.ndarray | None = None   # the last frame as every decoder will output it

    def write(self, frame: np.ndarray) -> int:
        """Code one (H, W, 3) uint8 frame; returns the bytes written for it."""
        frame = np.asarray(frame)
        want = (self.coder.height, self.coder.width, 3)
        if frame.shape != want or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 of shape {want}, got {frame.dtype} {frame.shape}")
        coder = self.coder
        a = coder.prepare(frame)
        quality = self.quality
        if self.rate is not None:
            other_bits = 8 * len(coder.motion_chunk(a)) + 8 * PACKET_OVERHEAD
            quality = self.rate.choose(a.ftype, lambda q: coder.bits(a, coder.codes(a, self.codec.levels[q]))
                                       + other_bits)
        packet, self.last_decoded = coder.packet(a, *coder.choose(a, self.codec.levels[quality]))
        n = self.writer.write(packet)
        if self.rate is not None:
            self.rate.update(a.ftype, quality, 8 * n)
        self.qualities.append(quality)
        return n

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> "StreamEncoder":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()


class StreamDecoder:
    """Iterates over the decoded (H, W, 3) uint8 frames of an .ncv stream."""

    def __init__(self, codec: "Codec", fileobj: BinaryIO, limits: DecodeLimits | None = None):
        self.reader = StreamReader(fileobj, DecodeLimits.of(limits))
        self.header = self.reader.header
        codec.check_stream(self.header)
        h = self.header
        self.coder = FrameCoder(codec, h.width, h.height, codec.levels[codec.default_quality], max(1, h.gop))

    def __iter__(self) -> Iterator[np.ndarray]:
        for packet in self.reader:
            yield self.decode_packet(packet)

    def decode_packet(self, packet: Packet) -> np.ndarray:
        return self.coder.decode(packet)


class Codec:
    """A loaded model plus everything needed to code video with it."""

    def __init__(self, model: LearnedRateModel, name: str, sha256: str, training: dict | None = None):
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.training = dict(training or {})   # the model file's training record (registry.CARD_FIELDS)
        self._card: dict | None = None
        self.name = name
        self.sha256 = sha256
        self.model_hash = bytes.fromhex(sha256)[:8]
        self._entropy: tuple[torch.Tensor, EntropyCoder] | None = None
        self.levels = gain_levels(model.cfg.qualities)
        self.qualities = tuple(self.levels)
        self.default_quality = self.qualities[len(self.qualities) // 2]
        self.default_gop = DEFAULT_GOP

    @property
    def entropy(self) -> EntropyCoder:
        """The rANS coder under the model's frozen tables (built once per table tensor); TablesNotExportedError if
        the model was never exported, ValueError if its tables do not fit its config."""
        cdf = self.model.entropy.cdf
        if self._entropy is None or self._entropy[0] is not cdf:
            self._entropy = (cdf, EntropyCoder(self.model))
        return self._entropy[1]

    @property
    def card(self) -> dict:
        """What `ncodec models --json` lists: name, version, sha256, parameters, decoder kMAC per pixel (I and P
        frames, counted on a decode), quality levels and the training record (steps, CPU and GPU hours, commands)."""
        if self._card is None:
            from .model.macs import decoder_macs_per_pixel
            macs = decoder_macs_per_pixel(self.model)
            t = self.training
            self._card = {
                "name": self.name, "version": t.get("version"), "sha256": self.sha256,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "decoder_kmac_per_pixel": {k: round(v / 1000, 2) for k, v in macs.items()},
                "qualities": list(self.qualities), "default_quality": self.default_quality,
                "training": {"steps": t.get("steps"), "cpu_hours": t.get("cpu_hours"),
                             "gpu_hours": t.get("gpu_hours"), "commands": list(t.get("commands") or [])}}
        return self._card

    def __repr__(self) -> str:
        return f"Codec(name={self.name!r}, sha256={self.sha256[:16]}..., qualities={self.qualities})"

    def check_stream(self, header: StreamHeader) -> None:
        """BitstreamError for a stream of the RVQ models' format versions (whatever model it names, checked
        first), ModelError for a stream of other weights."""
        if header.version != FORMAT_VERSION:
            raise BitstreamError(f"a format version {header.version} stream holds an RVQ model's codes (ncodec-base "
                                 f"1.x), which this ncodec no longer decodes (ncodec 0.1 does)")
        if header.model_name != self.name or header.model_hash != self.model_hash:
            raise ModelError(f"stream was coded with model {header.model_name!r} ({header.model_hash.hex()}), "
                             f"not {self.name!r} ({self.model_hash.hex()})")

    def _quality(self, quality: int | None) -> int:
        q = self.default_quality if quality is None else quality
        if q not in self.qualities:
            raise ValueError(f"quality must be one of {self.qualities}, got {quality}")
        return int(q)

    @staticmethod
    def _scenecut(scenecut: float | None) -> float:
        s = DEFAULT_SCENECUT if scenecut is None else scenecut
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not 0 <= s <= 100:
            raise ValueError(f"scenecut must be a number of dB in 0..100 (0 disables it), got {scenecut!r}")
        return float(s)

    @staticmethod
    def _preset(preset: str | Preset | None) -> Preset:
        if preset is None:
            return PRESETS[DEFAULT_PRESET]
        if isinstance(preset, Preset):
            return preset
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
        return PRESETS[preset]

    def _rate(self, quality: int | None, bitrate: str | float | None) -> tuple[int, float | None]:
        """(quality, bitrate): a constant quality, or quality 0 and bits per second with rate control."""
        if bitrate is None:
            return self._quality(quality), None
        if quality is not None:
            raise ValueError("give a quality or a bitrate, not both")
        return 0, parse_bitrate(bitrate)

    def _gop(self, gop: int | None) -> int:
        g = self.default_gop if gop is None else gop
        if not 1 <= int(g) <= 65535:
            raise ValueError(f"gop must be in 1..65535, got {gop}")
        return int(g)

    # streaming ------------------------------------------------------------------
    def stream_encoder(self, fileobj: BinaryIO, width: int, height: int, fps: Fraction = Fraction(30, 1),
                       quality: int | None = None, gop: int | None = None, frame_count: int = 0,
                       scenecut: float | None = None, preset: str | None = None,
                       bitrate: str | float | None = None, frames_hint: int = 0) -> StreamEncoder:
        """An encoder writing to ``fileobj``. ``gop``: the longest run of frames between I-frames; ``scenecut``
        (dB, default DEFAULT_SCENECUT, 0 = off): also start an I-frame where the motion-compensated prediction
        falls that much below the last P-frame's (see FrameCoder.scene_cut). ``preset`` (fast, medium, slow,
        veryslow; default medium): how hard the encoder works, the decoder is the same. ``bitrate`` (bits per
        second, or text such as "300k", "1.5M"), instead of a quality: rate control picks a quality per frame
        (see RateControl); the number of frames, when known (``frame_count``, or else ``frames_hint``, an estimate
        that the header does not record), lets it end the stream on target."""
        q, rate = self._rate(quality, bitrate)
        return StreamEncoder(self, fileobj, width, height, fps, q, self._gop(gop), frame_count,
                             self._scenecut(scenecut), self._preset(preset), rate, frame_count or frames_hint)

    def stream_decoder(self, fileobj: BinaryIO, limits: DecodeLimits | None = None,
                       max_pixels: int | None = None) -> StreamDecoder:
        """A decoder over ``fileobj``; a stream over the budget (``limits``, default ``DecodeLimits()``, with
        ``max_pixels`` pixels per frame if given) raises bitstream.BudgetExceededError before anything is allocated."""
        return StreamDecoder(self, fileobj, DecodeLimits.of(limits, max_pixels))

    # whole clips in memory ---------------------------------------------------------
    def encode(self, frames: np.ndarray | Iterable[np.ndarray], quality: int | None = None, gop: int | None = None,
               fps: Fraction = Fraction(30, 1), scenecut: float | None = None, preset: str | None = None,
               bitrate: str | float | None = None) -> bytes:
        """Frames (T, H, W, 3) uint8 or an iterable of (H, W, 3) -> bytes of an .ncv stream (the other arguments
        as in stream_encoder)."""
        it = iter(frames)
        first = next(it, None)
        if first is None:
            raise ValueError("no frames to encode")
        first = np.asarray(first)
        if first.ndim != 3 or first.shape[2] != 3:
            raise ValueError(f"frames must be (H, W, 3) RGB, got shape {first.shape}")
        n = len(frames) if hasattr(frames, "__len__") else 0
        buf = io.BytesIO()
        enc = self.stream_encoder(buf, first.shape[1], first.shape[0], fps, quality, gop, n, scenecut, preset, bitrate)
        enc.write(first)
        for f in it:
            enc.write(f)
        enc.close()
        return buf.getvalue()

    def decode(self, data: bytes, limits: DecodeLimits | None = None, max_pixels: int | None = None) -> np.ndarray:
        """Bytes of an .ncv stream -> frames (T, H, W, 3) uint8 (budget as in stream_decoder)."""
        dec = self.stream_decoder(io.BytesIO(data), limits, max_pixels)
        frames = list(dec)
        if not frames:
            return np.zeros((0, dec.header.height, dec.header.width, 3), np.uint8)
        return np.stack(frames)

    # files ------------------------------------------------------------------------
    def encode_file(self, src: str | os.PathLike, dst: str | os.PathLike, quality: int | None = None,
                    gop: int | None = None, force: bool = False, scenecut: float | None = None,
                    preset: str | None = None, bitrate: str | float | None = None) -> int:
        """Encode any video PyAV reads (or a PNG folder) to an .ncv file; returns the frame count.

        An existing ``dst`` is replaced only with ``force``, and only if it is a regular file (see io.atomic_output).
        """
        from .io import atomic_output, open_video
        info, frames = open_video(src)
        with atomic_output(dst, force) as tmp, open(tmp, "wb") as f:
            enc = self.stream_encoder(f, info.width, info.height, info.fps, quality, gop, 0, scenecut, preset,
                                      bitrate, frames_hint=info.frame_count)
            count = 0
            for frame in frames:
                enc.write(frame)
                count += 1
            if count == 0:
                raise ValueError(f"{src}: no frames to encode; nothing written")
            enc.close()
        return count

    def decode_file(self, src: str | os.PathLike, dst: str | os.PathLike, force: bool = False,
                    limits: DecodeLimits | None = None, max_pixels: int | None = None) -> int:
        """Decode an .ncv file to a video file (.y4m, .mkv, .mp4) or a PNG folder; returns the frame count.

        A stream without frames is an error (nothing is written); ``force`` and the budget as in encode_file and
        stream_decoder.
        """
        from .io import atomic_output, check_output, open_writer, output_kind
        kind = output_kind(dst)
        check_output(dst, force)  # before any decoding; atomic_output checks again
        with open(src, "rb") as f:
            dec = self.stream_decoder(f, limits, max_pixels)
            h = dec.header
            frames = iter(dec)
            first = next(frames, None)
            if first is None:
                raise BitstreamError(f"{src}: the stream has no frames; nothing written")
            with atomic_output(dst, force, directory=(kind == "png")) as tmp, \
                    open_writer(tmp, h.width, h.height, h.fps, kind=kind) as writer:
                writer.write(first)
                count = 1
                for frame in frames:
                    writer.write(frame)
                    count += 1
        return count


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
