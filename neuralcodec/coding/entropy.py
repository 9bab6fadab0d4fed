"""A frame's integers as rANS chunks under the model's frozen tables.

A packet holds two chunks: the motion field (empty for I-frames), then one rANS stream holding the side latent z
and then the latent y. z is coded under one frozen table per channel (from the factorized prior); y under the
frozen table of its scale index, which the integer-exact hyper-synthesis computes from the decoded z (and, for
P-frames, from the previous frame's y), so the decoder's probabilities depend on integers only
(bitstream.decode_symbols_staged decodes z, asks for y's tables, decodes y). Motion residuals are coded under
tables chosen by integers too (the x residual at the same block).

Table layout of `model.entropy.cdf` (CdfTables rows): hyper_dim z tables for I-frames and hyper_dim for P-frames,
one per channel, over -Z_RANGE..Z_RANGE; SCALE_LEVELS y tables, one per scale index, over -R_k..R_k; then the
motion tables. Values outside a table's range go through the escape bin (FORMAT.md)."""
from __future__ import annotations

import math

import numpy as np
import torch

from bitstream import (BitstreamError, CdfTables, decode_symbols, decode_symbols_staged, decode_varints,
                       encode_symbols, encode_varints)

from ..model.hyperprior import SCALE_LEVELS, gaussian_likelihood, scale_table
from ..model.learned_rate import LearnedRateModel
from ..model.motion import MV_MEDIAN, mv_to_residual, residual_to_mv

Z_RANGE = 48          # z tables cover -Z_RANGE..Z_RANGE
Y_TAIL = 6.5          # y tables cover +-ceil(Y_TAIL x scale) (at least 1)
MV_UNIFORM, MV_FIELD = b"\x01", b"\x02"   # first byte of a non-empty motion chunk (empty: no motion)


class TablesNotExportedError(RuntimeError):
    """Raised when coding is attempted with a model whose CDF tables were never frozen (the export does it)."""


def mv_table_count(mv_coding: int) -> int:
    """Motion residual tables: x and y; with MV_MEDIAN y has two, chosen by whether x's residual is zero."""
    return 3 if mv_coding == MV_MEDIAN else 2


def freeze_tables(model: LearnedRateModel, mv_cdfs: list[np.ndarray]) -> torch.Tensor:
    """The frozen integer tables of a trained model (export): z tables from each hyperprior's factorized prior
    (I and P have their own), y tables from the scale table, and the motion tables mv_cdfs (CDF rows) as given.
    Computed in float64 once; the integers are what every coder uses afterwards."""
    rows = []
    v = torch.arange(-Z_RANGE, Z_RANGE + 1, dtype=torch.float32)
    with torch.no_grad():
        for hyper in (model.hyper_i, model.hyper_p):
            c = model.cfg.hyper_dim
            lik = hyper.prior.likelihood(v[None].repeat(c, 1)).double().numpy()
            rows += [CdfTables.from_pmfs([p])[0] for p in lik]
    for s in scale_table():      # the training's likelihood (gaussian_likelihood), in float64
        r = max(1, math.ceil(Y_TAIL * float(s)))
        k = torch.arange(-r, r + 1, dtype=torch.float64)
        rows.append(CdfTables.from_pmfs([gaussian_likelihood(k, s).numpy()])[0])
    rows += [np.asarray(r) for r in mv_cdfs]
    return torch.from_numpy(CdfTables(rows).to_array().astype(np.int32))


def motion_cdf_rows(model: LearnedRateModel) -> list[np.ndarray]:
    """The motion tables (CDF rows) of an exported model: the layout ends with them."""
    tables = CdfTables.from_array(model.entropy.cdf.numpy())
    n = mv_table_count(model.cfg.mv_coding)
    return [tables[i] for i in range(len(tables) - n, len(tables))]


class EntropyCoder:
    """rANS coding of a frame's integers (z, y and motion) under a model's frozen tables."""

    def __init__(self, model: LearnedRateModel):
        """TablesNotExportedError if the model has no frozen tables, ValueError if they do not fit its config."""
        cfg = self.cfg = model.cfg
        cdf = model.entropy.cdf
        if cdf.numel() == 0:
            raise TablesNotExportedError("the model has no frozen entropy tables: export it before coding")
        self.tables = CdfTables.from_array(cdf.numpy())
        self.y_base = 2 * cfg.hyper_dim
        self.mv_table_base = self.y_base + SCALE_LEVELS
        if len(self.tables) != self.mv_table_base + mv_table_count(cfg.mv_coding):
            raise ValueError(f"{len(self.tables)} entropy tables, the config needs "
                             f"{self.mv_table_base + mv_table_count(cfg.mv_coding)}")
        ks = self.tables.num_symbols
        self.z_half = (ks[:self.y_base] - 1) // 2
        self.y_half = (ks[self.y_base:self.mv_table_base] - 1) // 2

    # latents ---------------------------------------------------------------------
    def _z_tables(self, intra: bool, shape) -> np.ndarray:
        c = np.arange(self.cfg.hyper_dim).reshape(-1, 1, 1) + (0 if intra else self.cfg.hyper_dim)
        return np.broadcast_to(c, shape)

    def encode_latents(self, z: np.ndarray, y: np.ndarray, index: np.ndarray, intra: bool) -> bytes:
        """One rANS stream: z (Z, h/4, w/4) under its channels' tables, then y (D, h, w) under the tables of its
        scale indexes (same shape as y)."""
        tz = self._z_tables(intra, z.shape)
        sym = np.concatenate([(z + self.z_half[tz]).ravel(), (y + self.y_half[index]).ravel()])
        return encode_symbols(sym, np.concatenate([tz.ravel(), self.y_base + index.ravel()]), self.tables)

    def decode_latents(self, data: bytes, intra: bool, z_shape: tuple[int, int, int], y_shape: tuple[int, int, int],
                       scale_index) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of encode_latents: (z, y); scale_index(z) gives y's scale indexes (shaped y_shape) from the
        decoded z, as the encoder computed them."""
        tz = self._z_tables(intra, z_shape)
        z_box: list[np.ndarray] = []

        def y_tables(z_sym: np.ndarray) -> np.ndarray:
            z = z_sym.astype(np.int64) - self.z_half[tz]
            z_box.append(z)
            index = np.asarray(scale_index(z))
            if index.shape != tuple(y_shape):
                raise BitstreamError(f"scale indexes of shape {index.shape}, the latent is {tuple(y_shape)}")
            z_box.append(index)
            return self.y_base + index

        _, y_sym = decode_symbols_staged(data, tz, self.tables, y_tables, int(np.prod(y_shape)))
        index = z_box[1]
        return z_box[0], y_sym.astype(np.int64) - self.y_half[index]

    # motion ----------------------------------------------------------------------
    def mv_contexts(self, res: np.ndarray) -> np.ndarray:
        """Table (2, bh, bw), counted from mv_table_base, of each motion residual (2, bh, bw): x's table for the
        first component; y's depends under MV_MEDIAN on the x residual at the same block."""
        ctx = np.zeros(res.shape, dtype=np.int64)
        ctx[1] = 1
        if self.cfg.mv_coding == MV_MEDIAN:
            ctx[1] += res[0] == 0
        return ctx

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
