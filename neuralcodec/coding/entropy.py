"""The integers of a frame as rANS chunks: their contexts, the layout of the frozen CDF tables, the symbol counts
the tables are frozen from, and the coding itself. Every probability the decoder uses is chosen by integers it
already has (the previous stage's codes, the previous frame's codes, the x residual of a motion vector)."""
from __future__ import annotations

import numpy as np
import torch

from bitstream import BitstreamError, CdfTables, decode_symbols, decode_varints, encode_symbols, encode_varints

from ..model.config import ModelConfig
from ..model.motion import MV_MEDIAN, mv_to_residual, residual_to_mv

NUM_CTX = 4          # context of a stage symbol: [previous stage's code == 0] + 2 * [previous frame's code == 0]
FRAME_TYPES = 2      # I, P

MV_UNIFORM, MV_FIELD = b"\x01", b"\x02"   # first byte of a non-empty motion chunk (empty: no motion)


class TablesNotExportedError(RuntimeError):
    """Raised when coding is attempted with a model whose CDF tables were never frozen (the export does it)."""


def stage_contexts(codes: np.ndarray, s: int, prev: np.ndarray | None) -> np.ndarray:
    """Context (h, w) of stage s given the already known stage s-1 codes and the previous frame's codes."""
    return contexts_above(codes[s - 1] if s > 0 else None, s, prev, codes.shape[1:])


def contexts_above(above: np.ndarray | None, s: int, prev: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """Context (h, w) of stage s given the stage s-1 codes above (h, w) (None for stage 0) and the previous
    frame's codes prev (n, h, w) or None: [above == 0] + 2 [previous frame's code of this stage == 0]."""
    ctx = np.zeros(shape, dtype=np.int64)
    if above is not None:
        ctx += above == 0
    if prev is not None and s < prev.shape[0]:
        ctx += 2 * (prev[s] == 0)
    return ctx


class TableLayout:
    """Which frozen table codes which symbol: per frame type, stage and stage context, then the motion tables."""

    def __init__(self, cfg: ModelConfig):
        self.cfg = cfg

    def stage_table(self, ftype: int, s: int, ctx: np.ndarray) -> np.ndarray:
        return (ftype * self.cfg.num_stages + s) * NUM_CTX + ctx

    @property
    def mv_table_base(self) -> int:
        return FRAME_TYPES * self.cfg.num_stages * NUM_CTX

    @property
    def mv_tables(self) -> int:
        """Motion residual tables: x and y; with MV_MEDIAN y has two, chosen by whether x's residual is zero."""
        return 3 if self.cfg.mv_coding == MV_MEDIAN else 2

    @property
    def num_tables(self) -> int:
        return self.mv_table_base + self.mv_tables

    def mv_contexts(self, res: np.ndarray) -> np.ndarray:
        """Table (2, bh, bw), counted from mv_table_base, of each motion residual (2, bh, bw): x's table for the
        first component; y's depends under MV_MEDIAN on the x residual at the same block."""
        ctx = np.zeros(res.shape, dtype=np.int64)
        ctx[1] = 1
        if self.cfg.mv_coding == MV_MEDIAN:
            ctx[1] += res[0] == 0
        return ctx


class SymbolCounts(TableLayout):
    """Symbol counts per table over the frames of a statistics pass, and the CDF tables frozen from them."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        s, k, a = cfg.num_stages, cfg.codebook_size, cfg.mv_alphabet
        self.stage = np.zeros((FRAME_TYPES, s, NUM_CTX, k), np.int64)
        self.mv = np.zeros((self.mv_tables, a), np.int64)

    def add(self, ftype: int, codes: np.ndarray, prev: np.ndarray | None, mv: np.ndarray | None) -> None:
        """Count one frame's codes (n, h, w), given the previous frame's, and its motion (2, bh, bw) or None."""
        for s in range(codes.shape[0]):
            ctx = stage_contexts(codes, s, prev)
            np.add.at(self.stage[ftype, s], (ctx.ravel(), codes[s].ravel()), 1)
        if mv is not None:
            res = mv_to_residual(mv, self.cfg.mv_coding)
            sym = np.clip(res + self.cfg.mv_alphabet // 2, 0, self.cfg.mv_alphabet - 1)
            np.add.at(self.mv, (self.mv_contexts(res).ravel(), sym.ravel()), 1)

    def cdf(self, prior: float = 0.05) -> torch.Tensor:
        """The frozen tables (add-`prior` smoothing) as the int32 array the model stores (model.entropy.cdf)."""
        rows = [self.stage[t, s, c] for t in range(FRAME_TYPES) for s in range(self.cfg.num_stages)
                for c in range(NUM_CTX)] + list(self.mv)
        pmfs = []
        for n in rows:
            p = n.astype(np.float64) + prior
            pmfs.append(p / p.sum())
        return torch.from_numpy(CdfTables.from_pmfs(pmfs).to_array().astype(np.int32))


class EntropyCoder(TableLayout):
    """Codes a frame's integers with rANS under a model's frozen tables: one chunk per stage, one motion chunk."""

    def __init__(self, cfg: ModelConfig, cdf: torch.Tensor):
        """cdf: the model's stored tables (model.entropy.cdf); ValueError if they do not fit the config."""
        super().__init__(cfg)
        if cdf.numel() == 0:
            raise TablesNotExportedError("the model has no frozen entropy tables: export it (its statistics pass) "
                                         "before coding")
        self.tables = CdfTables.from_array(cdf.numpy())
        self._bits: torch.Tensor | None = None     # (stage tables, K) bits per code, for code_cost
        if len(self.tables) != self.num_tables:
            raise ValueError(f"{len(self.tables)} entropy tables, the config needs {self.num_tables}")

    def code_cost(self, ftype: int, shape: tuple[int, int], prev: np.ndarray | None, scale: float):
        """The rate term of entropy-constrained quantization (ResidualVQ.encode's rate) for one frame of latent
        shape (h, w): scale x the bits of every code under the frozen table that its position's context selects,
        given the previous frame's codes prev (n, h, w) or None. Encoder-side only: it changes which codes are
        sent, never how they parse."""
        if self._bits is None:
            stage_tables = range(self.mv_table_base)      # the stage tables come first, then the motion tables
            self._bits = torch.from_numpy(np.stack([self.tables.symbol_bits(i) for i in stage_tables])).float()

        def rate(s: int, above: torch.Tensor | None) -> torch.Tensor:
            up = None if above is None else above.numpy().reshape(shape)
            tables = self.stage_table(ftype, s, contexts_above(up, s, prev, shape)).reshape(-1)
            return scale * self._bits[torch.from_numpy(tables)]
        return rate

    def encode_codes(self, ftype: int, codes: np.ndarray, prev: np.ndarray | None) -> list[bytes]:
        """One rANS chunk per stage for codes (n, h, w)."""
        return [encode_symbols(codes[s], self.stage_table(ftype, s, stage_contexts(codes, s, prev)), self.tables)
                for s in range(codes.shape[0])]

    def decode_codes(self, ftype: int, chunks: list[bytes], shape: tuple[int, int],
                     prev: np.ndarray | None) -> np.ndarray:
        """Inverse of encode_codes; stage s's context needs only stage s-1 and the previous frame."""
        codes = np.zeros((len(chunks),) + tuple(shape), dtype=np.int64)
        for s, chunk in enumerate(chunks):
            idx = self.stage_table(ftype, s, stage_contexts(codes, s, prev))
            codes[s] = decode_symbols(chunk, idx, self.tables)
        np.clip(codes, 0, self.cfg.codebook_size - 1, out=codes)  # corrupt data can only give valid indices
        return codes

    def encode_motion(self, mv: np.ndarray) -> bytes:
        """Motion field (2, bh, bw): b"" if all zero, MV_UNIFORM + one vector, or MV_FIELD + residuals (with
        MV_MEDIAN: varint length of the x residuals' rANS chunk, that chunk, then the y residuals' chunk)."""
        half, base, tables = self.cfg.mv_alphabet // 2, self.mv_table_base, self.tables
        if not mv.any():
            return b""
        if (mv == mv[:, :1, :1]).all():
            return MV_UNIFORM + encode_symbols(mv[:, :1, :1] + half, base + np.arange(2).reshape(2, 1, 1), tables)
        res = mv_to_residual(mv, self.cfg.mv_coding)
        idx = base + self.mv_contexts(res)
        if self.cfg.mv_coding != MV_MEDIAN:
            return MV_FIELD + encode_symbols(res + half, idx, tables)
        xs = encode_symbols(res[0] + half, idx[0], tables)
        return MV_FIELD + encode_varints([len(xs)]) + xs + encode_symbols(res[1] + half, idx[1], tables)

    def decode_motion(self, data: bytes, shape: tuple[int, int], limit: int) -> np.ndarray:
        """Inverse of encode_motion, every component clamped to +-limit; BitstreamError on a malformed chunk."""
        half, base, tables = self.cfg.mv_alphabet // 2, self.mv_table_base, self.tables
        shape = tuple(shape)
        if not data:
            return np.zeros((2,) + shape, dtype=np.int64)
        mode, body = data[:1], data[1:]
        if mode == MV_UNIFORM:
            v = decode_symbols(body, base + np.arange(2).reshape(2, 1, 1), tables).astype(np.int64) - half
            mv = np.broadcast_to(v, (2,) + shape).copy()
        elif mode == MV_FIELD and self.cfg.mv_coding == MV_MEDIAN:
            (n,), used = decode_varints(body, 1)
            if used + n > len(body):
                raise BitstreamError("motion chunk truncated")
            res = np.zeros((2,) + shape, dtype=np.int64)
            res[0] = decode_symbols(body[used: used + n], np.full(shape, base), tables).astype(np.int64) - half
            res[1] = decode_symbols(body[used + n:], base + self.mv_contexts(res)[1], tables).astype(np.int64) - half
            mv = residual_to_mv(res, MV_MEDIAN)
        elif mode == MV_FIELD:
            ctx = np.broadcast_to(np.arange(2).reshape(2, 1, 1), (2,) + shape)
            mv = residual_to_mv(decode_symbols(body, base + ctx, tables).astype(np.int64) - half)
        else:
            raise BitstreamError(f"unknown motion mode {mode[0]}")
        return np.clip(mv, -limit, limit)
