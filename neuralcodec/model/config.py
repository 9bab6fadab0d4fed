"""Model configuration dataclass, stored inside every checkpoint and exported model."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the autoencoders, quantizers and entropy tables of one codec model."""

    channels: tuple[int, int, int] = (32, 48, 96)   # feature channels at 1/2, 1/4, 1/8 resolution
    blocks: tuple[int, int, int] = (0, 1, 2)        # residual blocks at each resolution
    latent_dim: int = 16                            # channels of the latent at 1/8 resolution (= codebook dim)
    num_stages: int = 8                             # residual VQ stages (quality level n uses the first n)
    codebook_size: int = 256                        # codes per stage; code 0 is fixed to the zero vector
    block_size: int = 16                            # motion block size in pixels
    search_range: int = 16                          # motion search range in pixels
    mv_alphabet: int = 129                          # motion residual symbols (quarter-pel, centred; escape beyond)
    stride: int = 8                                 # spatial downsampling of the latent (fixed by the architecture)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})

    @property
    def align(self) -> int:
        """Frames are padded to a multiple of this many pixels."""
        return max(self.stride, self.block_size)


TINY = ModelConfig(channels=(8, 12, 16), blocks=(0, 1, 1), latent_dim=4, num_stages=3, codebook_size=16)
