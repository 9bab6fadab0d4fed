"""Model v2's integers as rANS chunks, and one frame to one Packet and back.

A packet of a learned-rate model has two chunks: the motion field (empty for I-frames), then one rANS stream
holding the side latent z and then the latent y. z is coded under one frozen table per channel (from the
factorized prior); y under the frozen table of its scale index, which the integer-exact hyper-synthesis computes
from the decoded z (and, for P-frames, from the previous frame's y), so the decoder's probabilities depend on
integers only (bitstream.decode_symbols_staged decodes z, asks for y's tables, decodes y). The packet's quality
byte selects the gains.

Table layout of `model.entropy.cdf` (CdfTables rows): hyper_dim z tables, one per channel, over -R..R with
R = (K - 1) / 2; SCALE_LEVELS y tables, one per scale index, over -R_k..R_k; then the motion tables (as the RVQ
layout's). Values outside a table's range go through the escape bin (FORMAT.md)."""
from __future__ import annotations

import math

import numpy as np
import torch

from bitstream import BitstreamError, CdfTables, FrameType, Packet, decode_symbols_staged, encode_symbols

from ..model.hyperprior import SCALE_LEVELS, scale_table
from ..model.learned_rate import FrameLatents, LearnedRateModel
from .entropy import EntropyCoder, TableLayout
from .frame_coder import Analysis, FrameCoder, Level

Z_RANGE = 48          # z tables cover -Z_RANGE..Z_RANGE
Y_TAIL = 6.5          # y tables cover +-ceil(Y_TAIL x scale) (at least 1)
CHUNKS = 2            # motion; z then y


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
    for s in scale_table().tolist():
        r = max(1, math.ceil(Y_TAIL * s))
        k = torch.arange(-r, r + 1, dtype=torch.float64)
        c = lambda t: 0.5 * torch.erfc(-t / (s * math.sqrt(2)))  # noqa: E731
        rows.append(CdfTables.from_pmfs([(c(k + 0.5) - c(k - 0.5)).clamp(min=1e-12).numpy()])[0])
    rows += [np.asarray(r) for r in mv_cdfs]
    return torch.from_numpy(CdfTables(rows).to_array().astype(np.int32))


def motion_cdf_rows(model) -> list[np.ndarray]:
    """The motion tables (CDF rows) of an exported model of either design: both layouts end with them."""
    tables = CdfTables.from_array(model.entropy.cdf.numpy())
    n = TableLayout(model.cfg).mv_tables
    return [tables[i] for i in range(len(tables) - n, len(tables))]


def entropy_coder(model) -> EntropyCoder:
    """The rANS coder of an exported model under its frozen tables: HyperCoder for a learned-rate model, else the
    RVQ layout's EntropyCoder; TablesNotExportedError or ValueError as those raise."""
    return HyperCoder(model) if isinstance(model, LearnedRateModel) else EntropyCoder(model.cfg, model.entropy.cdf)


class HyperCoder(EntropyCoder):
    """rANS coding of a v2 frame's integers under its model's frozen tables (the motion coding is the RVQ
    layout's, with the motion tables after the z and y tables)."""

    def __init__(self, model: LearnedRateModel):
        super().__init__(model.cfg, model.entropy.cdf)
        ks = self.tables.num_symbols
        self.z_half = (ks[:self.y_base] - 1) // 2
        self.y_half = (ks[self.y_base:self.mv_table_base] - 1) // 2

    @property
    def y_base(self) -> int:
        return 2 * self.cfg.hyper_dim

    @property
    def mv_table_base(self) -> int:
        return self.y_base + SCALE_LEVELS

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


class HyperFrameCoder(FrameCoder):
    """FrameCoder for learned-rate models: the same closed loop (reference frame, frame types, scene cuts, motion
    presets), with a frame coded to y and z at a quality index and the previous frame's y as the P-frames'
    context. Presets change the motion search only (the RVQ model's latent refinement and skip choice do not
    apply)."""

    prev_codes: torch.Tensor | None      # the previous frame's y (1, D, h, w) int64

    @property
    def entropy(self) -> HyperCoder:
        return self.codec.entropy

    @torch.no_grad()
    def prepare(self, frame: np.ndarray) -> Analysis:
        a = self._analyse_motion(frame)
        a.z = self.model.analysis(a.x, a.warped)
        return a

    def codes(self, a: Analysis, level: Level) -> FrameLatents:
        return self.model.quantize(a.z, level.gain, a.ftype == FrameType.I)

    def _index(self, a_type: FrameType, z: torch.Tensor) -> torch.Tensor:
        return self.model.scale_index(z, None if a_type == FrameType.I else self.prev_codes)

    def _latents_chunk(self, a: Analysis, codes: FrameLatents) -> bytes:
        idx = self._index(a.ftype, codes.z)[0].numpy()
        return self.entropy.encode_latents(codes.z[0].numpy(), codes.y[0].numpy(), idx, a.ftype == FrameType.I)

    def bits(self, a: Analysis, codes: FrameLatents) -> int:
        """Coded size of the latents chunk in bits (coded for real: the rANS coder is cheap)."""
        return 8 * len(self._latents_chunk(a, codes))

    @torch.no_grad()
    def reconstruct(self, a: Analysis, codes: FrameLatents) -> torch.Tensor:
        return self.model.decode_frame(codes.y, codes.gain, a.warped)

    def choose(self, a: Analysis, level: Level):
        c = self.codes(a, level)
        return c, self.reconstruct(a, c)

    def commit(self, a: Analysis, codes: FrameLatents, recon: torch.Tensor | None = None):
        recon = self.reconstruct(a, codes) if recon is None else recon
        mv_np = None if a.mv is None else a.mv[0].numpy()
        return a.ftype, codes, mv_np, self._finish(a.ftype, recon, codes.y)

    def packet(self, a: Analysis, codes: FrameLatents, recon: torch.Tensor | None = None,
               quality: int | None = None) -> tuple[Packet, np.ndarray]:
        chunks = (self.motion_chunk(a), self._latents_chunk(a, codes))   # before commit moves prev_codes on
        _, _, _, frame = self.commit(a, codes, recon)
        return Packet(a.ftype, chunks, codes.gain + 1), frame

    def encode(self, frame: np.ndarray, level: Level | None = None) -> tuple[Packet, np.ndarray]:
        level = self.level if level is None else level
        a = self.prepare(frame)
        return self.packet(a, *self.choose(a, level))

    def decode(self, packet: Packet) -> np.ndarray:
        if len(packet.chunks) != CHUNKS:
            raise BitstreamError(f"packet has {len(packet.chunks)} chunks, a learned-rate model's has {CHUNKS}")
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
        y = torch.from_numpy(y)[None]
        return self.synthesise_v2(ftype, y, self.codec.levels[packet.quality].gain, mv)

    @property
    def cfg(self):
        return self.model.cfg

    @torch.inference_mode()
    def synthesise_v2(self, ftype: FrameType, y: torch.Tensor, gain: int, mv: np.ndarray | None) -> np.ndarray:
        warped = None if ftype == FrameType.I else self.model.warp(self.ref, torch.from_numpy(mv)[None])
        return self._finish(ftype, self.model.decode_frame(y, gain, warped), y)


__all__ = ["CHUNKS", "HyperCoder", "HyperFrameCoder", "entropy_coder", "freeze_tables", "motion_cdf_rows"]
