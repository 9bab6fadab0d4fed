"""Entropy model of code indices and motion residuals: integer contexts and frozen CDF tables."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bitstream import BitstreamError, CdfTables, decode_symbols, encode_symbols

from .config import ModelConfig

NUM_CTX = 4          # context of a stage symbol: [previous stage's code == 0] + 2 * [previous frame's code == 0]
FRAME_TYPES = 2      # I, P


MV_UNIFORM, MV_FIELD = b"\x01", b"\x02"   # first byte of a non-empty motion chunk (empty: no motion)


class TablesNotExportedError(RuntimeError):
    """Raised when coding is attempted before the integer CDF tables were built (see `update`)."""


def stage_contexts(codes: np.ndarray, s: int, prev: np.ndarray | None) -> np.ndarray:
    """Context (h, w) of stage s given the already known stage s-1 codes and the previous frame's codes."""
    ctx = np.zeros(codes.shape[1:], dtype=np.int64)
    if s > 0:
        ctx += codes[s - 1] == 0
    if prev is not None and s < prev.shape[0]:
        ctx += 2 * (prev[s] == 0)
    return ctx


class IndexEntropyModel(nn.Module):
    """Holds the integer CDF tables (a buffer in the state dict) and codes frames' integers with rANS."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("cdf", torch.zeros(0, 0, dtype=torch.int32))
        self._tables: CdfTables | None = None

    # table layout -------------------------------------------------------------
    def stage_table(self, ftype: int, s: int, ctx: np.ndarray) -> np.ndarray:
        return (ftype * self.cfg.num_stages + s) * NUM_CTX + ctx

    @property
    def mv_table_base(self) -> int:
        return FRAME_TYPES * self.cfg.num_stages * NUM_CTX

    # statistics and export ------------------------------------------------------
    def new_counts(self) -> dict[str, np.ndarray]:
        s, k, a = self.cfg.num_stages, self.cfg.codebook_size, self.cfg.mv_alphabet
        return {"stage": np.zeros((FRAME_TYPES, s, NUM_CTX, k), np.int64), "mv": np.zeros((2, a), np.int64)}

    def accumulate(self, counts: dict[str, np.ndarray], ftype: int, codes: np.ndarray,
                   prev: np.ndarray | None, mv: np.ndarray | None) -> None:
        """Add one frame's codes (n, h, w) and motion (2, bh, bw) to counts."""
        for s in range(codes.shape[0]):
            ctx = stage_contexts(codes, s, prev)
            np.add.at(counts["stage"][ftype, s], (ctx.ravel(), codes[s].ravel()), 1)
        if mv is not None:
            from .motion import mv_to_residual
            half = self.cfg.mv_alphabet // 2
            sym = np.clip(mv_to_residual(mv) + half, 0, self.cfg.mv_alphabet - 1)
            for c in range(2):
                counts["mv"][c] += np.bincount(sym[c].ravel(), minlength=self.cfg.mv_alphabet)

    def update(self, counts: dict[str, np.ndarray], prior: float = 0.05) -> None:
        """Freeze the CDF tables from symbol counts (add-`prior` smoothing); needed before coding."""
        pmfs = []
        for t in range(FRAME_TYPES):
            for s in range(self.cfg.num_stages):
                for c in range(NUM_CTX):
                    n = counts["stage"][t, s, c].astype(np.float64) + prior
                    pmfs.append(n / n.sum())
        for c in range(2):
            n = counts["mv"][c].astype(np.float64) + prior
            pmfs.append(n / n.sum())
        tables = CdfTables.from_pmfs(pmfs)
        self.cdf = torch.from_numpy(tables.to_array().astype(np.int32))
        self._tables = tables

    @property
    def exported(self) -> bool:
        return self.cdf.numel() > 0

    def tables(self) -> CdfTables:
        if not self.exported:
            raise TablesNotExportedError("entropy tables are not built: run update() (export) before coding")
        if self._tables is None:
            self._tables = CdfTables.from_array(self.cdf.numpy())
        return self._tables

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # buffer size changes on export
        key = prefix + "cdf"
        if key in state_dict:
            self.cdf = torch.zeros_like(state_dict[key])
            self._tables = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # coding ---------------------------------------------------------------------
    def encode_codes(self, ftype: int, codes: np.ndarray, prev: np.ndarray | None) -> list[bytes]:
        """One rANS chunk per stage for codes (n, h, w)."""
        tables = self.tables()
        return [encode_symbols(codes[s], self.stage_table(ftype, s, stage_contexts(codes, s, prev)), tables)
                for s in range(codes.shape[0])]

    def decode_codes(self, ftype: int, chunks: list[bytes], shape: tuple[int, int],
                     prev: np.ndarray | None) -> np.ndarray:
        """Inverse of encode_codes; stage s's context needs only stage s-1 and the previous frame."""
        tables = self.tables()
        codes = np.zeros((len(chunks),) + tuple(shape), dtype=np.int64)
        for s, chunk in enumerate(chunks):
            idx = self.stage_table(ftype, s, stage_contexts(codes, s, prev))
            codes[s] = decode_symbols(chunk, idx, tables)
        np.clip(codes, 0, self.cfg.codebook_size - 1, out=codes)  # corrupt data can only give valid indices
        return codes

    def _mv_indexes(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.ascontiguousarray(np.broadcast_to(np.array([0, 1]).reshape(2, 1, 1), (2,) + tuple(shape[-2:]))
                                    + self.mv_table_base)

    def encode_motion(self, mv: np.ndarray) -> bytes:
        """Motion field (2, bh, bw): b"" if all zero, MV_UNIFORM + one vector, or MV_FIELD + residuals."""
        from .motion import mv_to_residual
        half = self.cfg.mv_alphabet // 2
        if not mv.any():
            return b""
        if (mv == mv[:, :1, :1]).all():
            return MV_UNIFORM + encode_symbols(mv[:, :1, :1] + half, self._mv_indexes((1, 1)), self.tables())
        return MV_FIELD + encode_symbols(mv_to_residual(mv) + half, self._mv_indexes(mv.shape), self.tables())

    def decode_motion(self, data: bytes, shape: tuple[int, int], limit: int) -> np.ndarray:
        from .motion import residual_to_mv
        half = self.cfg.mv_alphabet // 2
        if not data:
            return np.zeros((2,) + tuple(shape), dtype=np.int64)
        mode, body = data[:1], data[1:]
        if mode == MV_UNIFORM:
            v = decode_symbols(body, self._mv_indexes((1, 1)), self.tables()).astype(np.int64) - half
            mv = np.broadcast_to(v, (2,) + tuple(shape)).copy()
        elif mode == MV_FIELD:
            mv = residual_to_mv(decode_symbols(body, self._mv_indexes(shape), self.tables()).astype(np.int64) - half)
        else:
            raise BitstreamError(f"unknown motion mode {mode[0]}")
        return np.clip(mv, -limit, limit)
