"""The codec API: frames <-> .ncv streams, frame by frame, on top of the model and the bitstream layer."""
from __future__ import annotations

import hashlib
import io
import os
from fractions import Fraction
from typing import BinaryIO, Iterable, Iterator

import numpy as np
import torch

from bitstream import BitstreamError, DecodeLimits, Packet, StreamHeader, StreamReader, StreamWriter

from .coding import FrameCoder
from .coding.presets import DEFAULT_PRESET, Preset, get_preset, quality_lambdas
from .model import VideoCodecModel
from .ratecontrol import RateController, parse_bitrate


class ModelError(ValueError):
    """Unknown model, bad model file, or a stream coded with other weights."""


DEFAULT_GOP = 32


class StreamEncoder:
    """Writes frames one at a time into an .ncv stream on a binary file object."""

    def __init__(self, codec: "Codec", fileobj: BinaryIO, width: int, height: int, fps: Fraction,
                 quality: int, gop: int, frame_count: int = 0, preset: str | Preset = DEFAULT_PRESET,
                 bitrate: int | str | None = None):
        self.coder = FrameCoder(codec.model, width, height, gop, codec.lambdas)
        self.quality = quality
        self.preset = get_preset(preset)
        header = StreamHeader(width=width, height=height, fps=Fraction(fps), frame_count=frame_count,
                              quality=quality, gop=gop, model_name=codec.name, model_hash=codec.model_hash)
        self.writer = StreamWriter(fileobj, header)
        self.rate: RateController | None = None
        if bitrate is not None:
            self.rate = RateController(parse_bitrate(bitrate), Fraction(fps), codec.model.cfg.num_qualities,
                                       quality - 1, 8 * self.writer.bytes_written, frame_count)
        self._overhead = 16   # bytes of packet framing beyond the chunks (measured on each write)

    def write(self, frame: np.ndarray, quality: int | None = None) -> int:
        """Code one (H, W, 3) uint8 frame (at the stream's quality unless given, or at the rate controller's
        choice with a bitrate); returns its bytes."""
        frame = np.asarray(frame)
        want = (self.coder.height, self.coder.width, 3)
        if frame.shape != want or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 of shape {want}, got {frame.dtype} {frame.shape}")
        if self.rate is not None and quality is None:
            return self._write_rate_controlled(frame)
        q = self.quality if quality is None else quality
        if not 1 <= q <= self.coder.cfg.num_qualities:
            raise ValueError(f"quality must be in 1..{self.coder.cfg.num_qualities}, got {q}")
        intra = self.coder.next_type().name == "I"
        packet, _ = self.coder.encode(frame, q - 1, self.preset)
        n = self.writer.write(packet)
        if self.rate is not None:
            self.rate.update(intra, q - 1, 8 * n)
        return n

    def _write_rate_controlled(self, frame: np.ndarray) -> int:
        """Code at the controller's quality; a frame far over its budget (or the first of its type, far under)
        is coded again at the quality the corrected size model gives (at most twice)."""
        rc, coder = self.rate, self.coder
        intra = coder.next_type().name == "I"
        budget = rc.budget(intra)
        state = (coder.index, coder.ref, coder.prev)
        q = rc.choose(intra, budget)
        tried: set[int] = set()
        for attempt in range(3):
            tried.add(q)
            coder.index, coder.ref, coder.prev = state
            packet, _ = coder.encode(frame, q, self.preset)
            bits = 8 * (sum(len(c) for c in packet.chunks) + self._overhead)
            first = rc.a[intra] is None
            rc.observe(intra, q, bits)
            if attempt == 2:
                break
            if bits > 1.5 * budget and q > 0:
                nq = min(rc.choose(intra, budget), q - 1)
            elif first and bits < budget / 1.5 and q < rc.levels - 1:
                nq = max(rc.choose(intra, budget), q + 1)
            else:
                break
            if nq in tried:
                break
            q = nq
        n = self.writer.write(packet)
        self._overhead = n - sum(len(c) for c in packet.chunks)
        rc.account(8 * n)
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
        self.coder = FrameCoder(codec.model, h.width, h.height, max(1, h.gop))

    def __iter__(self) -> Iterator[np.ndarray]:
        for packet in self.reader:
            yield self.decode_packet(packet)

    def decode_packet(self, packet: Packet) -> np.ndarray:
        return self.coder.decode(packet)


class Codec:
    """A loaded model plus everything needed to code video with it."""

    def __init__(self, model: VideoCodecModel, name: str, sha256: str, card: dict | None = None,
                 bf16: bool = True):
        """bf16: run the float transforms (not the integer entropy parameters) under bf16 autocast, as in
        training: about 1.5x faster on CPUs with BF16; decoded frames may then differ by a rounding between
        machines (the parse never does)."""
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.model.autocast = bf16
        self.name = name
        self.sha256 = sha256
        self.model_hash = bytes.fromhex(sha256)[:8]
        self.card = dict(card or {})
        self.qualities = tuple(range(1, model.cfg.num_qualities + 1))
        self.default_quality = int(self.card.get("default_quality", self.qualities[len(self.qualities) // 2]))
        self.default_gop = DEFAULT_GOP
        self.lambdas = quality_lambdas(self.card, model.cfg.num_qualities)  # the encoder's RD lambda per quality

    def __repr__(self) -> str:
        return f"Codec(name={self.name!r}, sha256={self.sha256[:16]}..., qualities=1..{len(self.qualities)})"

    def check_stream(self, header: StreamHeader) -> None:
        if header.model_name != self.name or header.model_hash != self.model_hash:
            raise ModelError(f"stream was coded with model {header.model_name!r} ({header.model_hash.hex()}), "
                             f"not {self.name!r} ({self.model_hash.hex()})")

    def _quality(self, quality: int | None) -> int:
        q = self.default_quality if quality is None else quality
        if q not in self.qualities:
            raise ValueError(f"quality must be one of 1..{len(self.qualities)}, got {quality}")
        return int(q)

    def _gop(self, gop: int | None) -> int:
        g = self.default_gop if gop is None else gop
        if not 1 <= int(g) <= 65535:
            raise ValueError(f"gop must be in 1..65535, got {gop}")
        return int(g)

    # streaming ------------------------------------------------------------------
    def stream_encoder(self, fileobj: BinaryIO, width: int, height: int, fps: Fraction = Fraction(30, 1),
                       quality: int | None = None, gop: int | None = None, frame_count: int = 0,
                       preset: str | Preset = DEFAULT_PRESET, bitrate: int | str | None = None) -> StreamEncoder:
        """An encoder writing to ``fileobj``. ``preset``: fast, medium, slow or veryslow (encoder work only; every
        preset decodes with the same decoder). ``bitrate`` (bits/s, or text like '300k', '1.5M') instead of
        ``quality``: a rate controller picks each frame's quality (see neuralcodec/ratecontrol.py)."""
        if quality is not None and bitrate is not None:
            raise ValueError("give quality or bitrate, not both")
        return StreamEncoder(self, fileobj, width, height, fps, self._quality(quality), self._gop(gop), frame_count,
                             get_preset(preset), bitrate)

    def stream_decoder(self, fileobj: BinaryIO, limits: DecodeLimits | None = None,
                       max_pixels: int | None = None) -> StreamDecoder:
        """A decoder over ``fileobj``; a stream over the budget (``limits``, default ``DecodeLimits()``, with
        ``max_pixels`` pixels per frame if given) raises bitstream.BudgetExceededError before anything is allocated."""
        return StreamDecoder(self, fileobj, DecodeLimits.of(limits, max_pixels))

    # whole clips in memory ---------------------------------------------------------
    def encode(self, frames: np.ndarray | Iterable[np.ndarray], quality: int | None = None, gop: int | None = None,
               fps: Fraction = Fraction(30, 1), preset: str | Preset = DEFAULT_PRESET,
               bitrate: int | str | None = None) -> bytes:
        """Frames (T, H, W, 3) uint8 or an iterable of (H, W, 3) -> bytes of an .ncv stream (preset and bitrate
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
        enc = self.stream_encoder(buf, first.shape[1], first.shape[0], fps, quality, gop, n, preset, bitrate)
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
                    gop: int | None = None, force: bool = False, preset: str | Preset = DEFAULT_PRESET,
                    bitrate: int | str | None = None) -> int:
        """Encode any video PyAV reads (or a PNG folder) to an .ncv file; returns the frame count.

        An existing ``dst`` is replaced only with ``force``, and only if it is a regular file (see io.atomic_output).
        """
        from .io import atomic_output, open_video
        info, frames = open_video(src)
        with atomic_output(dst, force) as tmp, open(tmp, "wb") as f:
            enc = self.stream_encoder(f, info.width, info.height, info.fps, quality, gop, 0, preset, bitrate)
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
