"""The frozen integer CDF tables of a model and their layout; built once at export, stored in the model file.

Layout (rows of the int32 table array, see bitstream.CdfTables.to_array):
  [0, L)                 Gaussian y tables, one per scale index (symbols -h..h, h from the table's length)
  [L, L + Z)             I-frame z tables, one per channel (symbols -z_max..z_max)
  [L + Z, L + 2Z)        P-frame z tables
  L + 2Z, L + 2Z + 1     motion residual tables (x, y components; quarter pels, centred)
Every symbol offset is read back from the table's own length, an integer, never recomputed from floats.
"""
from __future__ import annotations

import numpy as np
import torch

from bitstream import CdfTables

from ..model import ModelConfig, VideoCodecModel, scale_table
from ..model.entropy import gaussian_half_width, gaussian_pmf
from ..model.motion import mv_to_residual


class TablesNotExportedError(RuntimeError):
    """Raised when coding is attempted before the integer CDF tables were built (see `build_tables`)."""


class Layout:
    """Row numbers of each table family for a config."""

    def __init__(self, cfg: ModelConfig):
        self.gauss = 0
        self.z = {True: cfg.scale_levels, False: cfg.scale_levels + cfg.hyper_dim}
        self.mv = cfg.scale_levels + 2 * cfg.hyper_dim
        self.rows = self.mv + 2


def motion_counts(cfg: ModelConfig, fields: list[np.ndarray], prior: float = 0.5) -> np.ndarray:
    """(2, mv_alphabet) counts of motion residual symbols over motion fields (2, bh, bw), plus a prior."""
    half = cfg.mv_alphabet // 2
    counts = np.full((2, cfg.mv_alphabet), prior, np.float64)
    for mv in fields:
        sym = np.clip(mv_to_residual(mv) + half, 0, cfg.mv_alphabet - 1)
        for c in range(2):
            counts[c] += np.bincount(sym[c].ravel(), minlength=cfg.mv_alphabet)
    return counts


def build_tables(model: VideoCodecModel, mv_counts: np.ndarray) -> None:
    """Freeze the model's distributions into integer CDF tables (model.cdf); needed before coding."""
    cfg = model.cfg
    pmfs = [gaussian_pmf(float(s), gaussian_half_width(float(s), cfg.y_max)) for s in scale_table(cfg)]
    for prior in (model.i_zprior, model.p_zprior):
        pmfs.extend(prior.pmf(cfg.z_max))
    pmfs.extend(np.asarray(mv_counts, np.float64))
    model.cdf = torch.from_numpy(CdfTables.from_pmfs(pmfs).to_array().astype(np.int32))


class CoderTables:
    """CdfTables plus the per-row symbol offsets (half widths), from the frozen array alone."""

    def __init__(self, model: VideoCodecModel):
        if model.cdf.numel() == 0:
            raise TablesNotExportedError("entropy tables are not built: export the model before coding")
        self.layout = Layout(model.cfg)
        self.tables = CdfTables.from_array(model.cdf.cpu().numpy())
        if len(self.tables) != self.layout.rows:
            raise ValueError(f"model has {len(self.tables)} CDF tables, its config needs {self.layout.rows}")
        k = self.tables.num_symbols
        if np.any(k % 2 == 0):
            raise ValueError("every CDF table must have an odd, centred alphabet")
        self.offset = (k - 1) // 2


def coder_tables(model: VideoCodecModel) -> CoderTables:
    """The coder's view of a model's frozen tables (cached on the model object)."""
    cached = getattr(model, "_coder_tables", None)
    if cached is None or cached[0] is not model.cdf:
        model._coder_tables = (model.cdf, CoderTables(model))
    return model._coder_tables[1]
