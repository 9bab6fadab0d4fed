"""Integers <-> packets: frozen CDF tables and the FrameCoder (the only product code that imports bitstream)."""
from .frame_coder import FrameCoder
from .tables import TablesNotExportedError, build_tables, coder_tables, motion_counts

__all__ = ["FrameCoder", "TablesNotExportedError", "build_tables", "coder_tables", "motion_counts"]
