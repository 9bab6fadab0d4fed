"""One frame to one Packet and back: the closed-loop state that encoder and decoder share (the reference frame
and the previous frame's codes), the encoder's decisions (frame type, motion, codes per quality level and
preset) and the rANS chunks of the result (coding.entropy)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from bitstream import BitstreamError, FrameType, Packet

from ..model import to_levels
from ..model.motion import MOTION_MERGE

if TYPE_CHECKING:
    from ..codec import Codec

DEFAULT_SCENECUT = 6.0     # dB; see FrameCoder.scene_cut
SCENECUT_MAX_PSNR = 30.0   # a prediction better than this (dB) is never a scene cut
ECQ = 0.3                  # entropy-constrained codes: multiplier of the level's lam, chosen on the validation clips


@dataclass(frozen=True)
class Level:
    """What the encoder does at one quality level; the decoder needs none of it (stages = chunks per packet)."""

    stages: int            # residual VQ stages sent
    lam_i: float = 0.0     # rate-distortion thresholds (latent energy, see ResidualVQ.encode) for I and P frames
    lam_p: float = 0.0
    gain: int | None = None  # learned-rate models: the row of gains (quality index, 0-based); the RVQ: None


def gain_levels(qualities: int) -> dict[int, Level]:
    """A learned-rate model's quality table: quality q (1-based) codes with gain row q - 1."""
    return {q: Level(1, gain=q - 1) for q in range(1, qualities + 1)}


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
    ecq: float = ECQ                  # entropy-constrained codes: bits cost ecq x the level's lam each (0: off)

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
    z: torch.Tensor | None           # the encoder's latent: of x (I) or of x - warped (P)
    warped: torch.Tensor | None      # P: the motion-compensated prediction
    mv: torch.Tensor | None          # P: (1, 2, bh, bw) quarter pels


class FrameCoder:
    """Closed-loop state shared by encoder and decoder: the reference frame and the previous frame's codes.

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
        a = self._analyse_motion(frame)
        a.z = (self.model.i_enc(a.x) if a.ftype == FrameType.I else self.model.p_enc(a.x - a.warped)).float()
        return a

    @torch.no_grad()
    def _analyse_motion(self, frame: np.ndarray) -> Analysis:
        """The frame as a padded tensor, its type and, for a P-frame, its motion and prediction (z left None)."""
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
        return Analysis(x, ftype, None, warped, mv)

    def _vq(self, a: Analysis):
        return (self.model.i_vq, None) if a.ftype == FrameType.I else (self.model.p_vq, a.warped)

    def _lam(self, a: Analysis, level: Level) -> float:
        return level.lam_i if a.ftype == FrameType.I else level.lam_p

    def _rate(self, a: Analysis, level: Level):
        """The preset's rate term for ResidualVQ.encode (entropy-constrained codes), or None (the zero rule)."""
        lam = self._lam(a, level)
        if self.preset.ecq <= 0 or lam <= 0:
            return None
        return self.codec.entropy.code_cost(int(a.ftype), self.latent_shape, self.prev_codes, self.preset.ecq * lam)

    @torch.no_grad()
    def codes(self, a: Analysis, level: Level) -> torch.Tensor:
        """The codes (1, n, h, w) of the encoder's latent at a level: the nearest codes with the level's zero
        rule, or with the preset's ecq those of least squared error + ecq x lam x bits under the frozen tables."""
        return self._vq(a)[0].encode(a.z, level.stages, self._lam(a, level), self._rate(a, level))

    def bits(self, a: Analysis, codes: torch.Tensor) -> int:
        """Coded size of codes in bits (the motion chunk, the same for every level, not counted)."""
        return 8 * sum(len(c) for c in self.codec.entropy.encode_codes(int(a.ftype), codes[0].numpy(),
                                                                        self.prev_codes))

    def motion_chunk(self, a: Analysis) -> bytes:
        """The frame's motion chunk (empty for I-frames and all-zero motion)."""
        return b"" if a.mv is None else self.codec.entropy.encode_motion(a.mv[0].numpy())

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
                                       warped, rate=self._rate(a, level))
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

    def packet(self, a: Analysis, codes: torch.Tensor, recon: torch.Tensor | None = None,
               quality: int | None = None) -> tuple[Packet, np.ndarray]:
        """Code a prepared frame with these codes and move on: (its packet: the motion chunk, then one chunk per
        stage; the decoded frame). quality: the packet's own quality byte (rate-controlled streams), else None."""
        prev = self.prev_codes               # the entropy context: read before commit moves it on
        chunks = [self.motion_chunk(a)]
        ftype, codes_np, _, frame = self.commit(a, codes, recon)
        chunks += self.codec.entropy.encode_codes(int(ftype), codes_np, prev)
        return Packet(ftype, tuple(chunks), quality), frame

    def encode(self, frame: np.ndarray, level: Level | None = None) -> tuple[Packet, np.ndarray]:
        """One (H, W, 3) uint8 frame at a level (default: the coder's) -> (packet, decoded frame)."""
        a = self.prepare(frame)
        return self.packet(a, *self.choose(a, self.level if level is None else level))

    # decoder --------------------------------------------------------------------
    def decode(self, packet: Packet) -> np.ndarray:
        """A packet -> the decoded (H, W, 3) uint8 frame; BitstreamError for a packet this stream cannot hold."""
        stages, n_max = len(packet.chunks) - 1, self.model.cfg.num_stages
        if not 1 <= stages <= n_max:
            raise BitstreamError(f"packet has {len(packet.chunks)} chunks, expected 2..{1 + n_max}")
        ftype = FrameType(packet.frame_type)
        if ftype == FrameType.P and self.ref is None:
            raise BitstreamError("P-frame without a preceding I-frame")
        ent, mv = self.codec.entropy, None
        if ftype == FrameType.P:
            mv = ent.decode_motion(packet.chunks[0], self.mv_shape, self.model.mv_limit)
        codes = ent.decode_codes(int(ftype), list(packet.chunks[1:]), self.latent_shape, self.prev_codes)
        return self.synthesise(ftype, codes, mv)

    @torch.inference_mode()
    def synthesise(self, ftype: FrameType, codes: np.ndarray, mv: np.ndarray | None) -> np.ndarray:
        """Decode one frame from its integers."""
        c = torch.from_numpy(codes)[None]
        if ftype == FrameType.I:
            recon = self.model.decode_intra(c)
        else:
            recon = self.model.decode_inter(c, self.model.warp(self.ref, torch.from_numpy(mv)[None]))
        return self._finish(ftype, recon, codes)
