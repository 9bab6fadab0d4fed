"""The one layer between the model's integers and bytes.

    model (pure torch)          frame <-> integers: y, the side latent z, motion vectors (2, bh, bw)
    coding (this package)       those integers <-> rANS chunks under frozen CDF tables (entropy), one Packet per
                                frame with the closed-loop reference state (frame_coder)
    codec (API), cli, registry  streams and files of packets, rate control, model files
"""
from .entropy import EntropyCoder, TablesNotExportedError, freeze_tables, motion_cdf_rows
from .frame_coder import (CHUNKS, DEFAULT_PRESET, DEFAULT_SCENECUT, PRESETS, SCENECUT_MAX_PSNR, Analysis, FrameCoder,
                          Level, Preset, gain_levels)

__all__ = ["CHUNKS", "DEFAULT_PRESET", "DEFAULT_SCENECUT", "PRESETS", "SCENECUT_MAX_PSNR", "Analysis", "EntropyCoder",
           "FrameCoder", "Level", "Preset", "TablesNotExportedError", "freeze_tables", "gain_levels",
           "motion_cdf_rows"]
