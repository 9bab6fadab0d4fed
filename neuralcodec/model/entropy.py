"""The model's frozen entropy tables: an int32 buffer in its state dict, written at export (from the priors, by
neuralcodec.coding.entropy.freeze_tables) and read by the coding layer (neuralcodec.coding.entropy), which alone
knows their layout and turns integers into bytes."""
from __future__ import annotations

import torch
from torch import nn


class EntropyTables(nn.Module):
    """Holds `cdf`, the quantized CDF tables (empty until exported); its size is set by the file it loads."""

    def __init__(self):
        super().__init__()
        self.register_buffer("cdf", torch.zeros(0, 0, dtype=torch.int32))

    @property
    def exported(self) -> bool:
        return self.cdf.numel() > 0

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # buffer size changes on export
        key = prefix + "cdf"
        if key in state_dict:
            self.cdf = torch.zeros_like(state_dict[key])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
