"""FrameCoder: one frame <-> one Packet, holding the reference state that encoder and decoder share."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bitstream import BitstreamError, FrameType, Packet, decode_symbols, encode_symbols

from ..model import FrameCode, FrameParams, VideoCodecModel, to_levels
from ..model.motion import mv_to_residual, residual_to_mv
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


class FrameCoder:
    """Closed-loop state shared by encoder and decoder: the reference frame and the previous integer latent."""

    def __init__(self, model: VideoCodecModel, width: int, height: int, gop: int):
        self.model, self.cfg = model, model.cfg
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
    @torch.inference_mode()
    def encode(self, frame: np.ndarray, quality: int) -> tuple[Packet, np.ndarray]:
        """Code one (H, W, 3) uint8 frame at a 0-based quality index; returns its packet and decoded frame."""
        ftype = self.next_type()
        x = to_tensor(frame, self.cfg.align)
        q = torch.tensor([quality])
        intra = ftype == FrameType.I
        code, params = self.model.encode_frame(x, q, None if intra else self.ref, None if intra else self.prev)
        mv = b"" if intra else self._encode_motion(code.mv[0].numpy())
        z = self._code(code.z[0].numpy(), self._z_indexes(intra))
        y = self._code(code.y[0].numpy(), params.scale_index[0].numpy())
        packet = Packet(ftype, (bytes([quality]), mv, z, y))
        return packet, self._finish(code, params)

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
