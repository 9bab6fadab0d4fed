"""Rate control: pick each frame's quality so that a stream lands on a target bitrate (streaming, no look-ahead).

A leaky bucket of one second of the target rate; each frame gets a budget (the average frame, I-frames their
learned share, minus the deficit so far spread over half a second or the frames left); the quality is the
highest whose predicted size fits, from a per-frame-type model log(bits) = a + s * quality fitted online.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction

_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kKmM]?)\s*$")


def parse_bitrate(text: int | float | str) -> int:
    """Bits per second from 300000, '300k', '1.5M' (k = 1000, M = 1000000); ValueError for anything else."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        m = _RATE.match(str(text))
        if not m:
            raise ValueError(f"bitrate must be a number of bits/s like 300k, 1.5M or 2000000, got {text!r}")
        value = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[m.group(2).lower()]
    if not math.isfinite(value) or not 1000 <= value <= 1e10:
        raise ValueError(f"bitrate must be between 1k and 10000M bits/s, got {text!r}")
    return int(round(value))


class RateController:
    """Chooses a 0-based quality index per frame; `update` with each coded frame's real size."""

    def __init__(self, bitrate: int, fps: Fraction, num_qualities: int, start: int, spent_bits: int = 0,
                 frame_count: int = 0):
        self.bitrate, self.fps = bitrate, float(fps)
        self.frame_bits = bitrate / self.fps        # the average frame
        self.buffer = float(bitrate)                # one second of the target
        self.levels, self.start = num_qualities, start
        self.frame_count = frame_count              # 0: unknown (streaming)
        self.frames = 0
        self.deficit = float(spent_bits)            # bits spent beyond the schedule (the header to begin with)
        self.fullness = 0.0                         # leaky bucket, drained by frame_bits per frame
        self.a: dict[bool, float | None] = {True: None, False: None}   # log bits at quality 0, per intra
        self.s: dict[bool, float] = {True: 0.3, False: 0.3}             # log bits per quality step
        self.last: dict[bool, tuple[int, float] | None] = {True: None, False: None}

    def budget(self, intra: bool) -> float:
        share = 1.0
        if intra and self.a[True] is not None and self.a[False] is not None:
            share = min(max(math.exp(self.a[True] - self.a[False]), 1.0), max(1.0, self.fps / 4))
        elif intra:
            share = min(4.0, max(1.0, self.fps / 4))
        horizon = max(1.0, self.fps / 2)
        if self.frame_count:
            horizon = max(1.0, min(horizon, self.frame_count - self.frames))
        want = self.frame_bits * share - self.deficit / horizon
        room = self.buffer - self.fullness + self.frame_bits   # what the bucket takes without overflowing
        return max(min(want, 0.9 * room), 0.05 * self.frame_bits)

    def predict(self, intra: bool, q: int) -> float | None:
        a = self.a[intra]
        if a is None and self.a[not intra] is not None:   # the other type's model, scaled by a guessed ratio
            a = self.a[not intra] + (math.log(4.0) if intra else -math.log(4.0))
        return None if a is None else math.exp(a + self.s[intra] * q)

    def choose(self, intra: bool, budget: float | None = None) -> int:
        """Highest quality predicted to fit the frame's budget (the start quality before anything is known)."""
        budget = self.budget(intra) if budget is None else budget
        if self.predict(intra, 0) is None:
            return self.start
        fits = [q for q in range(self.levels) if self.predict(intra, q) <= budget]
        return max(fits) if fits else 0

    def observe(self, intra: bool, q: int, bits: float) -> None:
        """Fit the size model to one coded frame (also to trial codes that were thrown away)."""
        bits = max(bits, 8.0)
        last = self.last[intra]
        if last is not None and last[0] != q and last[1] > 0:
            slope = math.log(bits / last[1]) / (q - last[0])
            self.s[intra] = min(max(0.5 * self.s[intra] + 0.5 * slope, 0.02), 2.0)
        a = math.log(bits) - self.s[intra] * q
        self.a[intra] = a if self.a[intra] is None else 0.5 * self.a[intra] + 0.5 * a
        self.last[intra] = (q, bits)

    def update(self, intra: bool, q: int, bits: float) -> None:
        """Fit the model to one written frame and account it."""
        self.observe(intra, q, bits)
        self.account(bits)

    def account(self, bits: float) -> None:
        """Account one written frame (the bucket and the deficit)."""
        self.frames += 1
        self.deficit += bits - self.frame_bits
        self.fullness = max(0.0, self.fullness + bits - self.frame_bits)
