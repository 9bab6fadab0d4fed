"""Model configuration dataclass, stored inside every checkpoint and exported model, validated before use."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

# Bounds on every size a config may ask for: a model file is untrusted input, and nothing is allocated before
# its config passed these checks.
_LIMITS = {"channels": (1, 512), "blocks": (0, 8), "latent_dim": (1, 256), "block_size": (4, 128),
           "search_range": (0, 256), "mv_alphabet": (3, 4095), "stride": (8, 8), "mv_coding": (0, 1),
           "rate_model": (1, 1), "qualities": (1, 64), "hyper_channels": (1, 256), "hyper_dim": (1, 128)}
# Fields added after models were shipped, with the value every file written before them implies.
_ADDED = {"mv_coding": 0, "rate_model": 0, "qualities": 16, "hyper_channels": 64, "hyper_dim": 32}
# rate_model: 0 was the residual VQ with counted tables (models 1.0 to 1.17, removed in ncodec 0.2), 1 the learned
# rate (model v2, ncodec-base 2.x), the only design this version builds. Its files also carry the RVQ's two sizes,
# which it ignores.
RVQ, LEARNED_RATE = 0, 1
_RETIRED = ("num_stages", "codebook_size")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the transforms, motion, hyperprior and quality levels of one codec model (model v2)."""

    channels: tuple[int, int, int] = (32, 48, 96)   # feature channels at 1/2, 1/4, 1/8 resolution
    blocks: tuple[int, int, int] = (0, 1, 2)        # residual blocks at each resolution
    latent_dim: int = 16                            # channels of the integer latent y at 1/8 resolution
    block_size: int = 16                            # motion block size in pixels
    search_range: int = 16                          # motion search range in pixels
    mv_alphabet: int = 129                          # motion residual symbols (quarter-pel, centred; escape beyond)
    stride: int = 8                                 # spatial downsampling of the latent (fixed by the architecture)
    mv_coding: int = 1                              # motion vector prediction and contexts (motion.MV_CODINGS):
    #                                                 0 left neighbour (models to 1.11), 1 median + x/y context
    rate_model: int = LEARNED_RATE                  # the design (see RVQ, LEARNED_RATE above): only 1 builds
    qualities: int = 16                             # quality levels (rows of per-channel gains)
    hyper_channels: int = 64                        # channels of the hyper networks
    hyper_dim: int = 32                             # channels of the side latent z (at 1/32)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """ValueError unless every field has the right type and a bounded value."""
        for f in fields(self):
            v = getattr(self, f.name)
            lo, hi = _LIMITS[f.name]
            if f.name in ("channels", "blocks"):
                if not isinstance(v, tuple) or len(v) != 3 or not all(type(x) is int for x in v):
                    raise ValueError(f"config field {f.name} must be 3 integers, got {v!r}"[:200])
                if not all(lo <= x <= hi for x in v):
                    raise ValueError(f"config field {f.name} out of range [{lo}, {hi}]: {v!r}"[:200])
            elif type(v) is not int or not lo <= v <= hi:
                raise ValueError(f"config field {f.name} must be an integer in [{lo}, {hi}], got {v!r}"[:200])

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelConfig":
        """Parse and validate; ValueError on malformed JSON, unknown or missing fields, bad values and the configs
        of RVQ models (ncodec-base 1.x)."""
        try:
            raw = json.loads(text)
        except (TypeError, ValueError) as e:
            raise ValueError(f"model config is not valid JSON ({e})") from None
        if not isinstance(raw, dict):
            raise ValueError("model config must be a JSON object")
        known = {f.name for f in fields(cls)}
        raw = {**{k: v for k, v in _ADDED.items() if k not in raw}, **raw}
        if raw["rate_model"] == RVQ:
            raise ValueError("an RVQ model (ncodec-base 1.x), which this ncodec no longer runs: it runs "
                             "learned-rate models (2.x); decode its streams with ncodec 0.1")
        raw = {k: v for k, v in raw.items() if k not in _RETIRED}
        unknown, missing = set(raw) - known, known - set(raw)
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)[:5]}"[:200])
        if missing:
            raise ValueError(f"missing model config fields: {sorted(missing)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})

    @property
    def align(self) -> int:
        """Frames are padded to a multiple of this many pixels: the side latent's 1/32 and the motion blocks."""
        return max(self.stride * 4, self.block_size)


TINY = ModelConfig(channels=(8, 12, 16), blocks=(0, 1, 1), latent_dim=4, qualities=4, hyper_channels=8, hyper_dim=4)
