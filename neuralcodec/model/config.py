"""Model configuration dataclass, stored inside every checkpoint and exported model, validated before use."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

# Bounds on every size a config may ask for: a model file is untrusted input, and nothing is allocated
# before its config passed these checks.
_LIMITS = {
    "channels": (1, 512), "enc_blocks": (0, 8), "dec_blocks": (0, 8), "latent_dim": (1, 512),
    "hyper_dim": (1, 512), "hyper_channels": (1, 512), "num_qualities": (2, 64), "scale_levels": (2, 256),
    "z_max": (1, 1024), "y_max": (1, 1 << 15), "mean_steps": (1, 16), "weight_bits": (1, 16),
    "act_bits": (0, 12), "act_max": (1, 1024), "block_size": (4, 128), "search_range": (0, 256),
    "mv_alphabet": (3, 4095), "stride": (16, 16),
}


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the transforms, the integer hyper-synthesis and the entropy model of one codec model."""

    channels: tuple[int, int, int, int] = (32, 64, 96, 128)  # features at 1/2, 1/4, 1/8, 1/16 resolution
    enc_blocks: tuple[int, int, int, int] = (0, 1, 1, 1)     # residual blocks of the encoders at each resolution
    dec_blocks: tuple[int, int, int, int] = (0, 1, 1, 1)     # residual blocks of the decoders (decode MACs!)
    latent_dim: int = 128                 # channels of y at 1/16 resolution
    hyper_dim: int = 64                   # channels of the side latent z at 1/64 resolution
    hyper_channels: int = 64              # width of the integer hyper-synthesis
    num_qualities: int = 16               # quality levels; each has its own gain vector on y
    scale_levels: int = 64                # Gaussian scale table size (log-spaced scale_min..scale_max)
    scale_min: float = 0.11
    scale_max: float = 64.0
    z_max: int = 48                       # z is clamped to [-z_max, z_max] (its alphabet)
    y_max: int = 2047                     # y symbols (y - mean) are clamped to [-y_max, y_max]
    mean_steps: int = 4                   # means are multiples of 1 / mean_steps
    weight_bits: int = 8                  # integer hyper-synthesis: weights are multiples of 2^-weight_bits
    act_bits: int = 6                     # ... activations multiples of 2^-act_bits
    act_max: int = 64                     # ... activations (and inputs) clamped to [0 (or -act_max), act_max)
    block_size: int = 16                  # motion block size in pixels
    search_range: int = 16                # motion search range in pixels
    mv_alphabet: int = 129                # motion residual symbols (quarter-pel, centred; escape beyond)
    stride: int = 16                      # spatial downsampling of y (fixed by the architecture)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """ValueError unless every field has the right type and a bounded value."""
        for f in fields(self):
            v = getattr(self, f.name)
            lo, hi = _LIMITS.get(f.name, (None, None))
            if f.name in ("channels", "enc_blocks", "dec_blocks"):
                if not isinstance(v, tuple) or len(v) != 4 or not all(type(x) is int for x in v):
                    raise ValueError(f"config field {f.name} must be 4 integers, got {v!r}")
                if not all(lo <= x <= hi for x in v):
                    raise ValueError(f"config field {f.name} out of range [{lo}, {hi}]: {v!r}")
            elif f.name in ("scale_min", "scale_max"):
                if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) \
                        or not 0.01 <= v <= 1024:
                    raise ValueError(f"config field {f.name} must be a number in [0.01, 1024], got {v!r}")
            else:
                if type(v) is not int or not lo <= v <= hi:
                    raise ValueError(f"config field {f.name} must be an integer in [{lo}, {hi}], got {v!r}")
        if not self.scale_min < self.scale_max:
            raise ValueError("config: scale_min must be below scale_max")
        if self.mv_alphabet % 2 == 0:
            raise ValueError("config: mv_alphabet must be odd (centred)")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        """Parse and validate; ValueError on malformed JSON, unknown or missing fields and bad values."""
        try:
            raw = json.loads(text)
        except (TypeError, ValueError) as e:
            raise ValueError(f"model config is not valid JSON ({e})") from None
        if not isinstance(raw, dict):
            raise ValueError("model config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown, missing = set(raw) - known, known - set(raw)
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        if missing:
            raise ValueError(f"missing model config fields: {sorted(missing)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})

    @property
    def align(self) -> int:
        """Frames are padded to a multiple of this many pixels."""
        return max(self.stride, self.block_size)


TINY = ModelConfig(channels=(8, 8, 12, 16), enc_blocks=(0, 0, 0, 1), dec_blocks=(0, 0, 0, 1), latent_dim=8,
                   hyper_dim=4, hyper_channels=8, num_qualities=4, scale_levels=32)
