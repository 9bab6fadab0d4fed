"""FrameCoder: one frame <-> one Packet, holding the reference state that encoder and decoder share."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bitstream import BitstreamError, FrameType, Packet, decode_symbols, encode_symbols

from ..model import FrameCode, FrameParams, VideoCodecModel, to_levels
from ..model.entropy import gaussian_likelihood
from ..model.motion import mv_to_residual, residual_to_mv
from .presets import MEDIUM, Preset, quality_lambdas
from .tables import CoderTables, coder_tables

# Packet chunks (format version 2): [quality byte, motion, z, y]
CHUNKS = 4
MV_UNIFORM, MV_FIELD = b"\x01", b"\x02"   # first byte of a non-empty motion chunk (empty: all zero)


def pad_frame(x: torch.Tensor, align: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % align, (-w) % align
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x


def to_tensor(frame: np.ndarray, align: int) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H', W') float in [0, 1], padded to a multiple of align."""
    t = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float().div_(255)
    return pad_frame(t, align).contiguous(memory_format=torch.channels_last)


def to_uint8(x: torch.Tensor, h: int, w: int) -> np.ndarray:
    return (to_levels(x[0, :, :h, :w]) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


@dataclass
class _Trial:
    """One coded candidate of the encoder's search."""

    cost: float                 # coded bits + lambda * 255^2 * SSE (8-bit units, mean over channels)
    packet: Packet
    frame: np.ndarray           # decoded (H, W, 3) uint8
    y_hat: torch.Tensor
    code: FrameCode
    params: FrameParams
    xhat: torch.Tensor          # decoded, unclamped, padded


class FrameCoder:
    """Closed-loop state shared by encoder and decoder: the reference frame and the previous integer latent."""

    def __init__(self, model: VideoCodecModel, width: int, height: int, gop: int,
                 lambdas: list[float] | None = None):
        self.model, self.cfg = model, model.cfg
        self.lambdas = lambdas or quality_lambdas(None, model.cfg.num_qualities)  # RD lambda per quality index
        self.tables: CoderTables = coder_tables(model)
        self.width, self.height, self.gop = width, height, max(1, gop)
        self.index = 0
        self.ref: torch.Tensor | None = None
        self.prev: torch.Tensor | None = None
        a = self.cfg.align
        hp, wp = height + (-height) % a, width + (-width) % a
        self.latent_shape = (hp // self.cfg.stride, wp // self.cfg.stride)
        self.z_shape = (-(-self.latent_shape[0] // 4), -(-self.latent_shape[1] // 4))
        self.mv_shape = (hp // self.cfg.block_size, wp // self.cfg.block_size)

    def next_type(self) -> FrameType:
        return FrameType.I if self.ref is None or self.index % self.gop == 0 else FrameType.P

    def _finish(self, code: FrameCode, params: FrameParams) -> np.ndarray:
        xhat, y_hat = self.model.decode_frame(code, params, self.ref)
        frame = to_uint8(xhat, self.height, self.width)
        self.ref = to_tensor(frame, self.cfg.align)
        self.prev = y_hat
        self.index += 1
        return frame

    # symbols of each chunk --------------------------------------------------------------------------------
    def _z_indexes(self, intra: bool) -> np.ndarray:
        base = self.tables.layout.z[intra]
        c = self.cfg.hyper_dim
        return np.broadcast_to(np.arange(base, base + c).reshape(c, 1, 1), (c,) + self.z_shape).copy()

    def _mv_indexes(self, shape: tuple[int, int]) -> np.ndarray:
        base = self.tables.layout.mv
        return np.broadcast_to(np.array([base, base + 1]).reshape(2, 1, 1), (2,) + tuple(shape)).copy()

    def _encode_motion(self, mv: np.ndarray) -> bytes:
        half = self.cfg.mv_alphabet // 2
        if not mv.any():
            return b""
        if (mv == mv[:, :1, :1]).all():
            return MV_UNIFORM + encode_symbols(mv[:, :1, :1] + half, self._mv_indexes((1, 1)), self.tables.tables)
        return MV_FIELD + encode_symbols(mv_to_residual(mv) + half, self._mv_indexes(mv.shape[1:]),
                                         self.tables.tables)

    def _decode_motion(self, data: bytes) -> np.ndarray:
        half, limit = self.cfg.mv_alphabet // 2, self.model.mv_limit
        if not data:
            return np.zeros((2,) + self.mv_shape, dtype=np.int64)
        mode, body = data[:1], data[1:]
        if mode == MV_UNIFORM:
            v = decode_symbols(body, self._mv_indexes((1, 1)), self.tables.tables).astype(np.int64) - half
            mv = np.broadcast_to(v, (2,) + self.mv_shape).copy()
        elif mode == MV_FIELD:
            res = decode_symbols(body, self._mv_indexes(self.mv_shape), self.tables.tables).astype(np.int64) - half
            mv = residual_to_mv(np.clip(res, -4 * limit, 4 * limit))
        else:
            raise BitstreamError(f"unknown motion mode {mode[0]}")
        return np.clip(mv, -limit, limit)

    def _code(self, symbols: np.ndarray, rows: np.ndarray) -> bytes:
        return encode_symbols(symbols + self.tables.offset[rows], rows, self.tables.tables)

    def _parse(self, data: bytes, rows: np.ndarray, bound: int) -> np.ndarray:
        sym = decode_symbols(data, rows, self.tables.tables).astype(np.int64) - self.tables.offset[rows]
        return np.clip(sym, -bound, bound)   # corrupt data can only give in-range values

    # encoder and decoder ------------------------------------------------------------------------------------
    @torch.no_grad()   # not inference mode: the slower presets take gradients on the latent
    def encode(self, frame: np.ndarray, quality: int, preset: Preset = MEDIUM) -> tuple[Packet, np.ndarray]:
        """Code one (H, W, 3) uint8 frame at a 0-based quality index; returns its packet and decoded frame."""
        ftype = self.next_type()
        x = to_tensor(frame, self.cfg.align)
        q = torch.tensor([quality])
        intra = ftype == FrameType.I
        if not preset.searches:
            mv = None if intra else self.model.motion(x, self.ref, round(preset.motion[0].search *
                                                                         self.cfg.search_range),
                                                      preset.motion[0].finest, preset.motion[0].repeat)
            code, params = self.model.encode_frame(x, q, None if intra else self.ref, None if intra else self.prev,
                                                   mv)
            return self._packet(code, params), self._finish(code, params)
        best = self._search(frame, x, q, intra, preset, self.lambdas[quality])
        return best.packet, self._commit(best)

    # encoder-side rate-distortion search -----------------------------------------------------------------
    def _packet(self, code: FrameCode, params: FrameParams) -> Packet:
        mv = b"" if code.intra else self._encode_motion(code.mv[0].numpy())
        z = self._code(code.z[0].numpy(), self._z_indexes(code.intra))
        y = self._code(code.y[0].numpy(), params.scale_index[0].numpy())
        return Packet(FrameType.I if code.intra else FrameType.P, (bytes([int(code.quality[0])]), mv, z, y))

    def _trial(self, frame: np.ndarray, code: FrameCode, params: FrameParams, lam: float) -> "_Trial":
        """Code and decode a candidate: its packet, decoded frame and real RD cost."""
        packet = self._packet(code, params)
        xhat, y_hat = self.model.decode_frame(code, params, self.ref)
        out = to_uint8(xhat, self.height, self.width)
        sse = float(np.square(out.astype(np.float64) - frame).sum()) / 3     # 8-bit units, channel mean
        bits = 8 * sum(len(c) for c in packet.chunks)
        return _Trial(bits + lam * sse, packet, out, y_hat, code, params, xhat)

    def _commit(self, t: "_Trial") -> np.ndarray:
        self.ref = to_tensor(t.frame, self.cfg.align)
        self.prev = t.y_hat
        self.index += 1
        return t.frame

    def _search(self, frame: np.ndarray, x: torch.Tensor, q: torch.Tensor, intra: bool, preset: Preset,
                lam: float) -> "_Trial":
        ref, prev = (None, None) if intra else (self.ref, self.prev)
        fields: list[torch.Tensor | None] = [None]
        if not intra:
            fields = [self.model.motion(x, ref, round(m.search * self.cfg.search_range), m.finest, m.repeat)
                      for m in preset.motion]
            if preset.zero_mv:
                fields.append(torch.zeros_like(fields[0]))
        best = None
        seen: list[torch.Tensor] = []
        for mv in fields:
            if mv is not None and any(torch.equal(mv, s) for s in seen):
                continue
            seen += [] if mv is None else [mv]
            t = self._trial(frame, *self.model.encode_frame(x, q, ref, prev, mv), lam)
            best = t if best is None or t.cost < best.cost else best
        bases = [best]
        if preset.refine_steps:
            code, params = self.model.refine(x, best.code, best.params, ref, preset.refine_steps, lam)
            if not torch.equal(code.y, best.code.y):
                bases.append(self._trial(frame, code, params, lam))
        final = min(bases, key=lambda t: t.cost)
        if preset.skip:
            for base in bases:
                for code in self._skip_candidates(x, base, lam):
                    t = self._trial(frame, code, base.params, lam)
                    final = t if t.cost < final.cost else final
        return final

    def _skip_candidates(self, x: torch.Tensor, best: "_Trial", lam: float) -> list[FrameCode]:
        """Codes with the symbols of some latent positions set to zero (y_hat = mean): where the estimated bits of
        a position's symbols exceed lam * 255^2 * the SSE they save in its 16x16 block; and the whole latent."""
        code, params, model = best.code, best.params, self.model
        if not code.y.any():
            return []
        zero = torch.zeros_like(code.y)
        skipped = FrameCode(code.intra, code.quality, code.mv, code.z, zero)
        xs, _ = model.decode_frame(skipped, params, self.ref)
        s = self.cfg.stride
        gain = F.avg_pool2d((to_levels(xs) - x).pow(2).mean(1, keepdim=True) - (to_levels(best.xhat) - x).pow(2)
                            .mean(1, keepdim=True), s)[:, 0] * (s * s * 255 ** 2 * lam)
        scale = model.scales(params.scale_index.float())
        bits = lambda y: -torch.log2(gaussian_likelihood(y, params.mean, scale)).sum(1)  # noqa: E731
        saved = bits(code.y.float() + params.mean) - bits(params.mean)
        mask = (saved > gain)[:, None]
        out = [skipped]
        if mask.any() and not mask.all():
            out.insert(0, FrameCode(code.intra, code.quality, code.mv, code.z, torch.where(mask, zero, code.y)))
        return out

    @torch.inference_mode()
    def decode(self, packet: Packet) -> np.ndarray:
        """Decode one packet; BitstreamError on anything malformed."""
        if len(packet.chunks) != CHUNKS or len(packet.chunks[0]) != 1:
            raise BitstreamError(f"packet must have {CHUNKS} chunks starting with a quality byte")
        ftype = FrameType(packet.frame_type)
        intra = ftype == FrameType.I
        if not intra and self.ref is None:
            raise BitstreamError("P-frame without a preceding I-frame")
        quality = packet.chunks[0][0]
        if quality >= self.cfg.num_qualities:
            raise BitstreamError(f"quality index {quality} beyond the model's {self.cfg.num_qualities}")
        if intra and packet.chunks[1]:
            raise BitstreamError("I-frame packet carries motion")
        q = torch.tensor([quality])
        mv = None if intra else torch.from_numpy(self._decode_motion(packet.chunks[1]))[None]
        z = torch.from_numpy(self._parse(packet.chunks[2], self._z_indexes(intra), self.cfg.z_max))[None]
        params = self.model.frame_params(intra, z, q, self.latent_shape, None if intra else self.prev)
        y = torch.from_numpy(self._parse(packet.chunks[3], params.scale_index[0].numpy(), self.cfg.y_max))[None]
        code = FrameCode(intra, q, mv, z, y)
        return self._finish(code, params)
