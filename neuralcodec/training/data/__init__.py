"""Training data: preparation (prepare.py), synthetic camera motion (motion.py), ClipDataset and PackDataset."""
from __future__ import annotations

from typing import Any

__all__ = ["ClipDataset", "Motion", "PackDataset", "render_clip", "sample_motion"]


def __getattr__(name: str) -> Any:  # lazy, so `python -m neuralcodec.training.data.prepare` does not pre-import prepare
    if name == "ClipDataset":
        from .dataset import ClipDataset

        return ClipDataset
    if name == "PackDataset":
        from .pack_dataset import PackDataset

        return PackDataset
    if name in ("Motion", "render_clip", "sample_motion"):
        from . import motion

        return getattr(motion, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
