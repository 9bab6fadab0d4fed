"""Encoder presets: how much encoder-side search buys quality (the decoder and the format never change)."""
from __future__ import annotations

import math
from dataclasses import dataclass

# TrainConfig's defaults (neuralcodec/training/train.py), for models whose card has no train_config
DEFAULT_LAMBDA_MIN, DEFAULT_LAMBDA_MAX = 0.0005, 0.05


@dataclass(frozen=True)
class Motion:
    """One motion search: range as a fraction of cfg.search_range, finest refinement step (quarter pels: 1 is
    quarter-pel, 4 whole pixels), and how often the refinement ladder runs."""

    search: float = 1.0
    finest: int = 1
    repeat: int = 1


@dataclass(frozen=True)
class Preset:
    """Encoder-side work per frame. P-frames try every motion search in `motion` (and the zero field if
    `zero_mv`) and keep the cheapest by real RD cost; `refine_steps` gradient steps on the latent (model.refine);
    `skip`: latent positions (or the whole P-latent) whose symbols do not pay for themselves are set to the
    mean. Every choice is taken by the real cost (coded bytes + lambda * 255^2 * SSE of the decoded frame)."""

    name: str
    motion: tuple[Motion, ...]
    zero_mv: bool = False
    refine_steps: int = 0
    skip: bool = False

    @property
    def searches(self) -> bool:
        """Whether this preset compares candidates (otherwise it codes the one result, as medium does)."""
        return len(self.motion) > 1 or self.zero_mv or self.refine_steps > 0 or self.skip


# Each preset tries everything the faster ones try (same motion candidates, refinement and skip on top), so per
# frame its choice is never worse by the real cost; only the closed loop (other references) can differ.
_FAST_MOTION, _FULL_MOTION = Motion(0.5, finest=4), Motion()
FAST = Preset("fast", (_FAST_MOTION,))
MEDIUM = Preset("medium", (_FULL_MOTION, _FAST_MOTION), skip=True)
SLOW = Preset("slow", (_FULL_MOTION, _FAST_MOTION, Motion(repeat=2)), refine_steps=8, skip=True)
VERYSLOW = Preset("veryslow", (_FULL_MOTION, _FAST_MOTION, Motion(repeat=2), Motion(0.75)), refine_steps=24,
                  skip=True)
REFERENCE = Preset("reference", (_FULL_MOTION,))   # exactly model.encode_frame (what model.forward codes); API only
PRESETS = {p.name: p for p in (FAST, MEDIUM, SLOW, VERYSLOW)}
DEFAULT_PRESET = "medium"


def get_preset(name: str | Preset) -> Preset:
    """The preset of a name; ValueError for unknown names."""
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]


def quality_lambdas(card: dict | None, num_qualities: int) -> list[float]:
    """Training lambda of each 0-based quality index: log-spaced lambda_min..lambda_max of the model's
    train_config (as train.lambdas), TrainConfig's defaults when the card has none."""
    tc = (card or {}).get("train_config") or {}
    lo = float(tc.get("lambda_min", DEFAULT_LAMBDA_MIN))
    hi = float(tc.get("lambda_max", DEFAULT_LAMBDA_MAX))
    if num_qualities == 1:
        return [lo]
    return [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / (num_qualities - 1))
            for i in range(num_qualities)]
