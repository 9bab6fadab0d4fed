"""The codec API: frames <-> .ncv streams, frame by frame, on top of the model and the bitstream layer."""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import BinaryIO, Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from bitstream import BitstreamError, DecodeLimits, FrameType, Packet, StreamHeader, StreamReader, StreamWriter

from .model import VideoCodecModel, to_levels


class ModelError(ValueError):
    """Unknown model, bad model file, or a stream coded with other weights."""


DEFAULT_GOP = 32
DEFAULT_SCENECUT = 6.0     # dB; see FrameCoder.scene_cut
SCENECUT_MAX_PSNR = 30.0   # a prediction better than this (dB) is never a scene cut


@dataclass(frozen=True)
class Level:
    """What the encoder does at one quality level; the decoder needs none of it (stages = chunks per packet)."""

    stages: int            # residual VQ stages sent
    lam_i: float = 0.0     # rate-distortion thresholds (latent energy, see ResidualVQ.encode) for I and P frames
    lam_p: float = 0.0


def default_levels(num_stages: int) -> dict[int, Level]:
    return {n: Level(n) for n in range(1, num_stages + 1)}


def _pad(x: torch.Tensor, align: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % align, (-w) % align
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def _to_tensor(frame: np.ndarray, align: int) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float().div_(255)
    return _pad(t, align).contiguous(memory_format=torch.channels_last)


def _to_uint8(x: torch.Tensor, h: int, w: int) -> np.ndarray:
    return (to_levels(x[0, :, :h, :w]) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


class FrameCoder:
    """Closed-loop state shared by encoder and decoder: the reference frame and the previous frame's codes."""

    def __init__(self, codec: "Codec", width: int, height: int, level: Level, gop: int,
                 scenecut: float = DEFAULT_SCENECUT):
        self.codec, self.model = codec, codec.model
        self.width, self.height, self.level, self.gop = width, height, level, gop
        self.scenecut = scenecut
        self.since_intra = 0                       # frames coded since the last I-frame
        self.pred_mse: float | None = None         # the last P-frame's motion-compensated prediction error
        self.ref: torch.Tensor | None = None
        self.prev_codes: np.ndarray | None = None
        cfg = self.model.cfg
        self.align = cfg.align
        hp, wp = height + (-height) % self.align, width + (-width) % self.align
        self.latent_shape = (hp // cfg.stride, wp // cfg.stride)
        self.mv_shape = (hp // cfg.block_size, wp // cfg.block_size)

    def frame_type(self) -> FrameType:
        """The periodic choice: I at the start and every gop frames after the last I-frame, else P."""
        return FrameType.I if self.ref is None or self.since_intra >= self.gop else FrameType.P

    def scene_cut(self, pred_mse: float) -> bool:
        """Code this would-be P-frame as an I-frame instead? Yes when its motion-compensated prediction is worse
        than the last P-frame's by more than `scenecut` dB and below SCENECUT_MAX_PSNR dB: a cut, a flash or
        motion beyond the search range, where an I-frame costs fewer bits than the residual and restores the
        quality the P-frames after it build on. 0 disables it. Only the encoder decides; the packet's frame type
        tells the decoder."""
        if self.scenecut <= 0 or self.pred_mse is None:
            return False
        return pred_mse > self.pred_mse * 10 ** (self.scenecut / 10) and pred_mse > 10 ** (-SCENECUT_MAX_PSNR / 10)

    def _finish(self, ftype: FrameType, recon: torch.Tensor, codes: np.ndarray) -> np.ndarray:
        frame = _to_uint8(recon, self.height, self.width)
        self.ref = _to_tensor(frame, self.align)
        self.prev_codes = codes
        if ftype == FrameType.I:
            self.since_intra, self.pred_mse = 1, None
        else:
            self.since_intra += 1
        return frame

    @torch.inference_mode()
    def analyse(self, frame: np.ndarray) -> tuple[FrameType, np.ndarray, np.ndarray | None, np.ndarray]:
        """Encode one frame to integers: (type, codes (n, h, w), motion (2, bh, bw) or None, decoded frame)."""
        x = _to_tensor(frame, self.align)
        ftype = self.frame_type()
        if ftype == FrameType.P:
            mv = self.model.motion(x, self.ref)
            warped = self.model.warp(self.ref, mv)
            pred_mse = float((warped - x)[..., :self.height, :self.width].pow(2).mean())
            if self.scene_cut(pred_mse):
                ftype = FrameType.I
            else:
                self.pred_mse = pred_mse
        if ftype == FrameType.I:
            codes = self.model.encode_intra(x, self.level.stages, self.level.lam_i)
            recon, mv_np = self.model.decode_intra(codes), None
        else:
            codes = self.model.encode_inter(x, warped, self.level.stages, self.level.lam_p)
            recon, mv_np = self.model.decode_inter(codes, warped), mv[0].numpy()
        codes_np = codes[0].numpy()
        return ftype, codes_np, mv_np, self._finish(ftype, recon, codes_np)

    @torch.inference_mode()
    def synthesise(self, ftype: FrameType, codes: np.ndarray, mv: np.ndarray | None) -> np.ndarray:
        """Decode one frame from its integers."""
        c = torch.from_numpy(codes)[None]
        if ftype == FrameType.I:
            recon = self.model.decode_intra(c)
        else:
            recon = self.model.decode_inter(c, self.model.warp(self.ref, torch.from_numpy(mv)[None]))
        return self._finish(ftype, recon, codes)


class StreamEncoder:
    """Writes frames one at a time into an .ncv stream on a binary file object."""

    def __init__(self, codec: "Codec", fileobj: BinaryIO, width: int, height: int, fps: Fraction,
                 quality: int, gop: int, frame_count: int = 0, scenecut: float = DEFAULT_SCENECUT):
        self.coder = FrameCoder(codec, width, height, codec.levels[quality], gop, scenecut)
        header = StreamHeader(width=width, height=height, fps=Fraction(fps), frame_count=frame_count,
                              quality=quality, gop=gop, model_name=codec.name, model_hash=codec.model_hash)
        self.writer = StreamWriter(fileobj, header)
        self.entropy = codec.model.entropy
        self.entropy.tables()  # fail early if the model has no frozen tables

    def write(self, frame: np.ndarray) -> int:
        """Code one (H, W, 3) uint8 frame; returns the bytes written for it."""
        frame = np.asarray(frame)
        want = (self.coder.height, self.coder.width, 3)
        if frame.shape != want or frame.dtype != np.uint8:
            raise ValueError(f"frame must be uint8 of shape {want}, got {frame.dtype} {frame.shape}")
        prev = self.coder.prev_codes          # the entropy context: read before analyse moves it on
        ftype, codes, mv, _ = self.coder.analyse(frame)
        chunks = [b"" if mv is None else self.entropy.encode_motion(mv)]
        chunks += self.entropy.encode_codes(int(ftype), codes, prev)
        return self.writer.write(Packet(ftype, tuple(chunks)))

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
        self.coder = FrameCoder(codec, h.width, h.height, Level(codec.model.cfg.num_stages), max(1, h.gop))
        self.entropy = codec.model.entropy

    def __iter__(self) -> Iterator[np.ndarray]:
        for packet in self.reader:
            yield self.decode_packet(packet)

    def decode_packet(self, packet: Packet) -> np.ndarray:
        c = self.coder
        stages = len(packet.chunks) - 1
        if not 1 <= stages <= self.coder.model.cfg.num_stages:
            raise BitstreamError(f"packet has {len(packet.chunks)} chunks, expected 2..{1 + c.model.cfg.num_stages}")
        ftype = FrameType(packet.frame_type)
        if ftype == FrameType.P and c.ref is None:
            raise BitstreamError("P-frame without a preceding I-frame")
        mv = None
        if ftype == FrameType.P:
            mv = self.entropy.decode_motion(packet.chunks[0], c.mv_shape, c.model.mv_limit)
        codes = self.entropy.decode_codes(int(ftype), list(packet.chunks[1:]), c.latent_shape, c.prev_codes)
        return c.synthesise(ftype, codes, mv)


class Codec:
    """A loaded model plus everything needed to code video with it."""

    def __init__(self, model: VideoCodecModel, name: str, sha256: str, levels: dict[int, Level] | None = None):
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.name = name
        self.sha256 = sha256
        self.model_hash = bytes.fromhex(sha256)[:8]
        self.levels = dict(sorted((levels or default_levels(model.cfg.num_stages)).items()))
        if any(not 1 <= lv.stages <= model.cfg.num_stages for lv in self.levels.values()):
            raise ModelError(f"quality levels use 1..{model.cfg.num_stages} stages: {self.levels}")
        self.qualities = tuple(self.levels)
        self.default_quality = self.qualities[len(self.qualities) // 2]
        self.default_gop = DEFAULT_GOP

    def __repr__(self) -> str:
        return f"Codec(name={self.name!r}, sha256={self.sha256[:16]}..., qualities={self.qualities})"

    def check_stream(self, header: StreamHeader) -> None:
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

    def _gop(self, gop: int | None) -> int:
        g = self.default_gop if gop is None else gop
        if not 1 <= int(g) <= 65535:
            raise ValueError(f"gop must be in 1..65535, got {gop}")
        return int(g)

    # streaming ------------------------------------------------------------------
    def stream_encoder(self, fileobj: BinaryIO, width: int, height: int, fps: Fraction = Fraction(30, 1),
                       quality: int | None = None, gop: int | None = None, frame_count: int = 0,
                       scenecut: float | None = None) -> StreamEncoder:
        """An encoder writing to ``fileobj``. ``gop``: the longest run of frames between I-frames; ``scenecut``
        (dB, default DEFAULT_SCENECUT, 0 = off): also start an I-frame where the motion-compensated prediction
        falls that much below the last P-frame's (see FrameCoder.scene_cut)."""
        return StreamEncoder(self, fileobj, width, height, fps, self._quality(quality), self._gop(gop), frame_count,
                             self._scenecut(scenecut))

    def stream_decoder(self, fileobj: BinaryIO, limits: DecodeLimits | None = None,
                       max_pixels: int | None = None) -> StreamDecoder:
        """A decoder over ``fileobj``; a stream over the budget (``limits``, default ``DecodeLimits()``, with
        ``max_pixels`` pixels per frame if given) raises bitstream.BudgetExceededError before anything is allocated."""
        return StreamDecoder(self, fileobj, DecodeLimits.of(limits, max_pixels))

    # whole clips in memory ---------------------------------------------------------
    def encode(self, frames: np.ndarray | Iterable[np.ndarray], quality: int | None = None, gop: int | None = None,
               fps: Fraction = Fraction(30, 1), scenecut: float | None = None) -> bytes:
        """Frames (T, H, W, 3) uint8 or an iterable of (H, W, 3) -> bytes of an .ncv stream."""
        it = iter(frames)
        first = next(it, None)
        if first is None:
            raise ValueError("no frames to encode")
        first = np.asarray(first)
        if first.ndim != 3 or first.shape[2] != 3:
            raise ValueError(f"frames must be (H, W, 3) RGB, got shape {first.shape}")
        n = len(frames) if hasattr(frames, "__len__") else 0
        buf = io.BytesIO()
        enc = self.stream_encoder(buf, first.shape[1], first.shape[0], fps, quality, gop, n, scenecut)
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
                    gop: int | None = None, force: bool = False, scenecut: float | None = None) -> int:
        """Encode any video PyAV reads (or a PNG folder) to an .ncv file; returns the frame count.

        An existing ``dst`` is replaced only with ``force``, and only if it is a regular file (see io.atomic_output).
        """
        from .io import atomic_output, open_video
        info, frames = open_video(src)
        with atomic_output(dst, force) as tmp, open(tmp, "wb") as f:
            enc = self.stream_encoder(f, info.width, info.height, info.fps, quality, gop, scenecut=scenecut)
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
