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
from .model.motion import MOTION_MERGE
from .ratecontrol import RateControl, parse_bitrate


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


@dataclass(frozen=True)
class Preset:
    """How hard the encoder works (x264's presets): encoder-side work only, so every preset's stream decodes with
    the same decoder and format."""

    name: str
    search_range: int | None = None   # motion search radius in pixels (None: the model's, the largest it allows)
    finest_step: int = 1              # finest motion refinement in quarter pels (1: quarter-pel, 2: half-pel)
    refine_steps: int = 0             # gradient steps on each frame's latent through the decoder (Model.refine)
    skip_choice: bool = False         # P-frames: also try sending no residual at all (all-zero codes)
    motion_merge: float = MOTION_MERGE  # a block takes its motion predictor's vector within this mean abs luma

    @property
    def rd_search(self) -> bool:
        """Does this preset choose among candidates by rate-distortion cost (FrameCoder.choose)?"""
        return self.refine_steps > 0 or self.skip_choice


PRESETS = {
    "fast": Preset("fast", finest_step=2),
    "medium": Preset("medium"),
    "slow": Preset("slow", refine_steps=6, skip_choice=True),
    "veryslow": Preset("veryslow", refine_steps=20, skip_choice=True),
}
DEFAULT_PRESET = "medium"


@dataclass
class Analysis:
    """One frame after the level-independent work (motion search, scene-cut decision, the encoder's latent)."""

    x: torch.Tensor                  # the frame (1, 3, H, W), padded
    ftype: FrameType
    z: torch.Tensor                  # the encoder's latent: of x (I) or of x - warped (P)
    warped: torch.Tensor | None      # P: the motion-compensated prediction
    mv: torch.Tensor | None          # P: (1, 2, bh, bw) quarter pels


class FrameCoder:
    """Closed-loop state shared by encoder and decoder: the reference frame and the previous frame's codes.

    The encoder's side runs in three steps so that a rate controller can look at every level of a frame before
    it picks one: prepare (level-independent), codes / choose (per level), commit (decode and move on)."""

    def __init__(self, codec: "Codec", width: int, height: int, level: Level, gop: int,
                 scenecut: float = DEFAULT_SCENECUT, preset: Preset = PRESETS[DEFAULT_PRESET]):
        self.codec, self.model = codec, codec.model
        self.width, self.height, self.level, self.gop = width, height, level, gop
        self.scenecut, self.preset = scenecut, preset
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

    # encoder --------------------------------------------------------------------
    @torch.no_grad()
    def prepare(self, frame: np.ndarray) -> Analysis:
        """Motion search, the frame-type decision and the encoder's latent: everything no level changes."""
        x = _to_tensor(frame, self.align)
        ftype, warped, mv = self.frame_type(), None, None
        if ftype == FrameType.P:
            mv = self.model.motion(x, self.ref, self.preset.search_range, self.preset.finest_step,
                                   self.preset.motion_merge)
            warped = self.model.warp(self.ref, mv)
            pred_mse = float((warped - x)[..., :self.height, :self.width].pow(2).mean())
            if self.scene_cut(pred_mse):
                ftype, warped, mv = FrameType.I, None, None
            else:
                self.pred_mse = pred_mse
        z = self.model.i_enc(x) if ftype == FrameType.I else self.model.p_enc(x - warped)
        return Analysis(x, ftype, z.float(), warped, mv)

    def _vq(self, a: Analysis):
        return (self.model.i_vq, None) if a.ftype == FrameType.I else (self.model.p_vq, a.warped)

    def _lam(self, a: Analysis, level: Level) -> float:
        return level.lam_i if a.ftype == FrameType.I else level.lam_p

    @torch.no_grad()
    def codes(self, a: Analysis, level: Level) -> torch.Tensor:
        """The codes (1, n, h, w) of the encoder's latent at a level (nearest codes, the level's thresholds)."""
        return self._vq(a)[0].encode(a.z, level.stages, self._lam(a, level))

    def bits(self, a: Analysis, codes: torch.Tensor) -> int:
        """Coded size of codes in bits (the motion chunk, the same for every level, not counted)."""
        return 8 * sum(len(c) for c in self.model.entropy.encode_codes(int(a.ftype), codes[0].numpy(),
                                                                        self.prev_codes))

    @torch.no_grad()
    def reconstruct(self, a: Analysis, codes: torch.Tensor) -> torch.Tensor:
        if a.ftype == FrameType.I:
            return self.model.decode_intra(codes)
        return self.model.decode_inter(codes, a.warped)

    def _mse(self, a: Analysis, recon: torch.Tensor) -> float:
        return float((recon.clamp(0, 1) - a.x)[..., :self.height, :self.width].pow(2).mean())

    def rd_slope(self, a: Analysis, level: Level) -> float | None:
        """The local slope of this frame's rate-distortion curve along the codec's levels, -dMSE/dbpp between the
        neighbouring levels (the exchange rate the level table offers here); None where it cannot be measured."""
        levels = list(self.codec.levels.values())
        if level not in levels:
            return None
        i = levels.index(level)
        pts = []
        for lv in levels[max(0, i - 1): i + 2]:
            c = self.codes(a, lv)
            pts.append((self.bits(a, c), self._mse(a, self.reconstruct(a, c))))
        slopes = [(d0 - d1) / (r1 - r0) for (r0, d0), (r1, d1) in zip(pts, pts[1:]) if r1 > r0]
        if not slopes:
            return None
        return max(0.0, sum(slopes) / len(slopes)) * self.width * self.height

    def choose(self, a: Analysis, level: Level) -> tuple[torch.Tensor, torch.Tensor]:
        """(codes, reconstruction) of a frame at a level as the preset does it: the nearest codes of the encoder's
        latent, or with a slower preset the candidate of least rate-distortion cost MSE + slope x bits among
        them, the refined latents (Model.refine) and, for P-frames, no residual at all. The first candidate is
        the plain one, so a slower preset never codes a frame at a higher cost than a faster one given the same
        reference."""
        plain = self.codes(a, level)
        lam = self.rd_slope(a, level) if self.preset.rd_search else None
        if lam is None:
            return plain, self.reconstruct(a, plain)
        vq, warped = self._vq(a)
        npix = self.width * self.height

        def cost(codes: torch.Tensor, recon: torch.Tensor) -> float:
            return self._mse(a, recon) + lam * self.bits(a, codes) / npix

        candidates = self.model.refine(a.x, a.z, vq, level.stages, self._lam(a, level), self.preset.refine_steps,
                                       warped)
        best = min(((cost(c, r), k, c, r) for k, (c, r) in enumerate(candidates)), key=lambda t: t[:2])
        if self.preset.skip_choice and a.ftype == FrameType.P:
            zero = torch.zeros_like(plain)
            recon = self.reconstruct(a, zero)
            best = min(best, (cost(zero, recon), -1, zero, recon), key=lambda t: t[:2])
        return best[2], best[3]

    def commit(self, a: Analysis, codes: torch.Tensor, recon: torch.Tensor | None = None) \
            -> tuple[FrameType, np.ndarray, np.ndarray | None, np.ndarray]:
        """Move on to the next frame with these codes: (type, codes (n, h, w), motion (2, bh, bw) or None,
        decoded frame); recon, when the caller has it, is reconstruct(a, codes)."""
        recon = self.reconstruct(a, codes) if recon is None else recon
        codes_np = codes[0].numpy()
        mv_np = None if a.mv is None else a.mv[0].numpy()
        return a.ftype, codes_np, mv_np, self._finish(a.ftype, recon, codes_np)

    def analyse(self, frame: np.ndarray, level: Level | None = None) \
            -> tuple[FrameType, np.ndarray, np.ndarray | None, np.ndarray]:
        """Encode one frame to integers at a level (default: the coder's): (type, codes (n, h, w), motion
        (2, bh, bw) or None, decoded frame)."""
        a = self.prepare(frame)
        return self.commit(a, *self.choose(a, self.level if level is None else level))

    # decoder --------------------------------------------------------------------
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
                 quality: int, gop: int, frame_count: int = 0, scenecut: float = DEFAULT_SCENECUT,
                 preset: Preset = PRESETS[DEFAULT_PRESET], bitrate: float | None = None, frames_hint: int = 0):
        """quality 0 with a bitrate: rate control (format version 2, each packet carries its quality)."""
        self.codec = codec
        self.rate = None if bitrate is None else RateControl(bitrate, fps, codec.qualities,
                                                                frame_count or max(0, int(frames_hint)))
        level = codec.levels[codec.default_quality if self.rate else quality]
        self.coder = FrameCoder(codec, width, height, level, gop, scenecut, preset)
        header = StreamHeader(width=width, height=height, fps=Fraction(fps), frame_count=frame_count,
                              quality=0 if self.rate else quality, gop=gop, model_name=codec.name,
                              model_hash=codec.model_hash, version=2 if self.rate else 1)
        self.writer = StreamWriter(fileobj, header)
        self.entropy = codec.model.entropy
        self.entropy.tables()  # fail early if the model has no frozen tables
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
        prev = coder.prev_codes          # the entropy context: read before commit moves it on
        a = coder.prepare(frame)
        quality = self.quality
        if self.rate is not None:
            motion_bits = 8 * len(self._motion(a))
            sizes = {q: coder.bits(a, coder.codes(a, lv)) + motion_bits + 8 * self._overhead(lv.stages)
                     for q, lv in self.codec.levels.items()}
            quality = self.rate.choose(a.ftype, sizes)
        ftype, codes, mv, self.last_decoded = coder.commit(a, *coder.choose(a, self.codec.levels[quality]))
        chunks = [b"" if mv is None else self.entropy.encode_motion(mv)]
        chunks += self.entropy.encode_codes(int(ftype), codes, prev)
        n = self.writer.write(Packet(ftype, tuple(chunks), quality if self.rate else None))
        if self.rate is not None:
            self.rate.update(ftype, quality, 8 * n)
        self.qualities.append(quality)
        return n

    def _motion(self, a: Analysis) -> bytes:
        return b"" if a.mv is None else self.entropy.encode_motion(a.mv[0].numpy())

    def _overhead(self, stages: int) -> int:
        """Container bytes of a packet with stages + 1 chunks (FORMAT.md)."""
        return (7 if self.writer.header.version == 2 else 6) + 4 * (stages + 1)

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

    def __init__(self, model: VideoCodecModel, name: str, sha256: str, levels: dict[int, Level] | None = None,
                 training: dict | None = None):
        self.model = model.eval().to(memory_format=torch.channels_last)
        self.training = dict(training or {})   # the model file's training record (registry.CARD_FIELDS)
        self._card: dict | None = None
        self.name = name
        self.sha256 = sha256
        self.model_hash = bytes.fromhex(sha256)[:8]
        self.levels = dict(sorted((levels or default_levels(model.cfg.num_stages)).items()))
        if any(not 1 <= lv.stages <= model.cfg.num_stages for lv in self.levels.values()):
            raise ModelError(f"quality levels use 1..{model.cfg.num_stages} stages: {self.levels}")
        self.qualities = tuple(self.levels)
        self.default_quality = self.qualities[len(self.qualities) // 2]
        self.default_gop = DEFAULT_GOP

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
