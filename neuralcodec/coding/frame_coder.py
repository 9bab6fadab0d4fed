"""One frame to one Packet and back: the closed-loop state that encoder and decoder share (the reference frame
and the previous frame's integers), the encoder's decisions (frame type, motion, the integers per quality and
preset) and the rANS chunks of the result (coding.entropy)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from bitstream import BitstreamError, FrameType, Packet

from ..model import FrameLatents, to_levels
from ..model.motion import MOTION_MERGE

if TYPE_CHECKING:
    from ..codec import Codec
    from .entropy import EntropyCoder

DEFAULT_SCENECUT = 6.0     # dB; see FrameCoder.scene_cut
SCENECUT_MAX_PSNR = 30.0   # a prediction better than this (dB) is never a scene cut
CHUNKS = 2                 # a packet's chunks: motion; z then y


@dataclass(frozen=True)
class Level:
    """A quality level: the row of the model's gains it codes with (quality q uses row q - 1)."""

    gain: int


def gain_levels(qualities: int) -> dict[int, Level]:
    """A model's quality table: quality q (1-based) codes with gain row q - 1."""
    return {q: Level(q - 1) for q in range(1, qualities + 1)}


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
    refine_steps: int = 0             # gradient steps on each frame's latent (LearnedRateModel.refine)
    motion_merge: float = MOTION_MERGE  # a block takes its motion predictor's vector within this mean abs luma


PRESETS = {
    "fast": Preset("fast", finest_step=2),
    "medium": Preset("medium"),
    "slow": Preset("slow", refine_steps=6),
    "veryslow": Preset("veryslow", refine_steps=20),
}
DEFAULT_PRESET = "medium"


@dataclass
class Analysis:
    """One frame after the level-independent work (motion search, scene-cut decision, the encoder's latent)."""

    x: torch.Tensor                  # the frame (1, 3, H, W), padded
    ftype: FrameType
    z: torch.Tensor | None           # the encoder's latent: of x (I) or of x - warped (P)
    warped: torch.Tensor | None      # P: the motion-compensated prediction
    mv: torch.Tensor | None          # P: (1, 2, bh, bw) quarter pels


class FrameCoder:
    """Closed-loop state shared by encoder and decoder: the reference frame and the previous frame's integers y,
    the P-frames' entropy context.

    The encoder's side runs in three steps so that a rate controller can look at every level of a frame before
    it picks one: prepare (level-independent), codes / choose (per level), commit (decode and move on)."""

    def __init__(self, codec: Codec, width: int, height: int, level: Level, gop: int,
                 scenecut: float = DEFAULT_SCENECUT, preset: Preset = PRESETS[DEFAULT_PRESET]):
        self.codec, self.model = codec, codec.model
        self.width, self.height, self.level, self.gop = width, height, level, gop
        self.scenecut, self.preset = scenecut, preset
        self.since_intra = 0                       # frames coded since the last I-frame
        self.pred_mse: float | None = None         # the last P-frame's motion-compensated prediction error
        self.ref: torch.Tensor | None = None
        self.prev_codes: torch.Tensor | None = None  # the previous frame's y (1, D, h, w) int64
        cfg = self.cfg = self.model.cfg
        self.align = cfg.align
        hp, wp = height + (-height) % self.align, width + (-width) % self.align
        self.latent_shape = (hp // cfg.stride, wp // cfg.stride)
        self.mv_shape = (hp // cfg.block_size, wp // cfg.block_size)
        self._cache_owner: Analysis | None = None  # the frame whose integers and chunks _cache holds
        self._cache: dict = {}

    @property
    def entropy(self) -> EntropyCoder:
        return self.codec.entropy

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

    def _finish(self, ftype: FrameType, recon: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        frame = _to_uint8(recon, self.height, self.width)
        self._cache_owner, self._cache = None, {}
        self.ref = _to_tensor(frame, self.align)
        self.prev_codes = y
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
        return Analysis(x, ftype, self.model.analysis(x, warped), warped, mv)

    def _frame_cache(self, a: Analysis) -> dict:
        """What this frame's coding has computed so far (its integers per level, its coded chunks): a rate
        controller or a slow preset looks at a frame's chunks before the packet is written, and each chunk costs
        the exact float64 scale-index network once. Emptied when the coder moves on (_finish) or sees another
        frame."""
        if self._cache_owner is not a:
            self._cache_owner, self._cache = a, {}
        return self._cache

    def codes(self, a: Analysis, level: Level) -> FrameLatents:
        """The integers (y and the side latent z) of the encoder's latent at a level (computed once per frame)."""
        cache = self._frame_cache(a)
        if ("codes", level.gain) not in cache:
            cache["codes", level.gain] = self.model.quantize(a.z, level.gain, a.ftype == FrameType.I)
        return cache["codes", level.gain]

    def _index(self, ftype: FrameType, z: torch.Tensor) -> torch.Tensor:
        return self.model.scale_index(z, None if ftype == FrameType.I else self.prev_codes)

    def _latents_chunk(self, a: Analysis, codes: FrameLatents) -> bytes:
        """The z-then-y chunk of these integers, coded once per frame and integers (keyed by id: the entry keeps
        `codes` alive, so no other integers can take its id while it lives)."""
        cache = self._frame_cache(a)
        hit = cache.get(("chunk", id(codes)))
        if hit is None:
            idx = self._index(a.ftype, codes.z)[0].numpy()
            hit = cache["chunk", id(codes)] = (codes, self.entropy.encode_latents(
                codes.z[0].numpy(), codes.y[0].numpy(), idx, a.ftype == FrameType.I))
        return hit[1]

    def bits(self, a: Analysis, codes: FrameLatents) -> int:
        """Coded size of the latents chunk in bits (coded for real: the rANS coder is cheap; the motion chunk, the
        same at every level, not counted)."""
        return 8 * len(self._latents_chunk(a, codes))

    def motion_chunk(self, a: Analysis) -> bytes:
        """The frame's motion chunk (empty for I-frames and all-zero motion)."""
        return b"" if a.mv is None else self.entropy.encode_motion(a.mv[0].numpy())

    @torch.no_grad()
    def reconstruct(self, a: Analysis, codes: FrameLatents) -> torch.Tensor:
        return self.model.decode_frame(codes.y, codes.gain, a.warped)

    def _mse(self, a: Analysis, recon: torch.Tensor) -> float:
        return float((recon.clamp(0, 1) - a.x)[..., :self.height, :self.width].pow(2).mean())

    def cost(self, a: Analysis, codes: FrameLatents, recon: torch.Tensor) -> float:
        """The rate-distortion cost the slow presets minimise: coded bits per pixel + lambda x MSE, with the lambda
        the level's quality was trained for (LearnedRateModel.lam)."""
        return self.bits(a, codes) / (self.width * self.height) + self.model.lam(codes.gain) * self._mse(a, recon)

    def choose(self, a: Analysis, level: Level) -> tuple[FrameLatents, torch.Tensor]:
        """(integers, reconstruction) of a frame at a level as the preset does it: those of the encoder's latent,
        or with a slower preset the candidate of least cost among it and the refined latents
        (LearnedRateModel.refine). The first candidate is the plain one, so a slower preset never codes a frame
        at a higher cost than a faster one given the same reference."""
        plain = self.codes(a, level)
        if self.preset.refine_steps <= 0:
            return plain, self.reconstruct(a, plain)
        intra = a.ftype == FrameType.I
        best = None
        for k, y in enumerate(self.model.refine(a.x, a.z, level.gain, a.warped, None if intra else self.prev_codes,
                                                self.preset.refine_steps)):
            c = plain if k == 0 else self.model.quantize(y, level.gain, intra)
            r = self.reconstruct(a, c)
            cand = (self.cost(a, c, r), k, c, r)
            best = cand if best is None or cand[:2] < best[:2] else best
        return best[2], best[3]

    def commit(self, a: Analysis, codes: FrameLatents, recon: torch.Tensor | None = None) \
            -> tuple[FrameType, FrameLatents, np.ndarray | None, np.ndarray]:
        """Move on to the next frame with these integers: (type, integers, motion (2, bh, bw) or None, decoded
        frame); recon, when the caller has it, is reconstruct(a, codes)."""
        recon = self.reconstruct(a, codes) if recon is None else recon
        mv_np = None if a.mv is None else a.mv[0].numpy()
        return a.ftype, codes, mv_np, self._finish(a.ftype, recon, codes.y)

    def packet(self, a: Analysis, codes: FrameLatents, recon: torch.Tensor | None = None) \
            -> tuple[Packet, np.ndarray]:
        """Code a prepared frame with these integers and move on: (its packet: the motion chunk, then z and y,
        and the quality byte that selects their gains; the decoded frame)."""
        chunks = (self.motion_chunk(a), self._latents_chunk(a, codes))   # before commit moves prev_codes on
        _, _, _, frame = self.commit(a, codes, recon)
        return Packet(a.ftype, chunks, codes.gain + 1), frame

    def encode(self, frame: np.ndarray, level: Level | None = None) -> tuple[Packet, np.ndarray]:
        """One (H, W, 3) uint8 frame at a level (default: the coder's) -> (packet, decoded frame)."""
        level = self.level if level is None else level
        a = self.prepare(frame)
        return self.packet(a, *self.choose(a, level))

    # decoder --------------------------------------------------------------------
    def decode(self, packet: Packet) -> np.ndarray:
        """A packet -> the decoded (H, W, 3) uint8 frame; BitstreamError for a packet this stream cannot hold."""
        if len(packet.chunks) != CHUNKS:
            raise BitstreamError(f"packet has {len(packet.chunks)} chunks, expected {CHUNKS}")
        if packet.quality not in self.codec.levels:
            raise BitstreamError(f"packet quality {packet.quality} is not one of this model's "
                                 f"{min(self.codec.qualities)}..{max(self.codec.qualities)}")
        ftype = FrameType(packet.frame_type)
        if ftype == FrameType.P and self.ref is None:
            raise BitstreamError("P-frame without a preceding I-frame")
        ent, mv, intra = self.entropy, None, ftype == FrameType.I
        if not intra:
            mv = ent.decode_motion(packet.chunks[0], self.mv_shape, self.model.mv_limit)
        elif packet.chunks[0]:
            raise BitstreamError("an I-frame packet has a motion chunk")
        h, w = self.latent_shape
        _, y = ent.decode_latents(packet.chunks[1], intra, (self.cfg.hyper_dim, h // 4, w // 4),
                                  (self.cfg.latent_dim, h, w),
                                  lambda z: self._index(ftype, torch.from_numpy(z)[None])[0].numpy())
        return self.synthesise(ftype, torch.from_numpy(y)[None], self.codec.levels[packet.quality].gain, mv)

    @torch.inference_mode()
    def synthesise(self, ftype: FrameType, y: torch.Tensor, gain: int, mv: np.ndarray | None) -> np.ndarray:
        """Decode one frame from its integers."""
        warped = None if ftype == FrameType.I else self.model.warp(self.ref, torch.from_numpy(mv)[None])
        return self._finish(ftype, self.model.decode_frame(y, gain, warped), y)
