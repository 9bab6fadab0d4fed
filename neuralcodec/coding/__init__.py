"""The one layer between the model's integers and bytes.

    model (pure torch)          frame <-> codes (S, h, w) and motion vectors (2, bh, bw)
    coding (this package)       those integers <-> rANS chunks under frozen CDF tables (entropy), one Packet per
                                frame with the closed-loop reference state (frame_coder)
    codec (API), cli, registry  streams and files of packets, rate control, model files
"""
from .entropy import EntropyCoder, SymbolCounts, TableLayout, TablesNotExportedError, stage_contexts
from .frame_coder import (DEFAULT_PRESET, DEFAULT_SCENECUT, PRESETS, SCENECUT_MAX_PSNR, Analysis, FrameCoder, Level,
                          Preset, default_levels, gain_levels)

__all__ = ["DEFAULT_PRESET", "DEFAULT_SCENECUT", "PRESETS", "SCENECUT_MAX_PSNR", "Analysis", "EntropyCoder",
           "FrameCoder", "Level", "Preset", "SymbolCounts", "TableLayout", "TablesNotExportedError",
           "default_levels", "gain_levels", "stage_contexts"]
