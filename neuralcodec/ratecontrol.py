"""Rate control: a quality per frame so that a stream lands on a target bitrate (no torch: the CLI parses with it)."""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

from bitstream import FrameType


class RateControl:
    """Picks a quality per frame so that a stream lands on a target bitrate (bits per second).

    The encoder can know each frame's exact size at every level before it picks one (the levels share the motion
    search and the latent; only the quantization and the rANS coding differ), so the controller chooses from real
    sizes, not predictions (with the slow presets, the sizes of the encoder's own latent: the refined latent the
    preset keeps may code to another size, which update() then counts). Each size costs a coding of the frame, so it
    asks only for those its rules need, taking sizes to rise with the quality: the rules below are bisections, about
    2 log2(levels) sizes a frame (5-7 of 16 levels) instead of every level's. A P-frame's budget is the target per
    frame minus the overspend so far, spread over the next second, or over the frames left when the count is known
    (so the whole stream ends on target), or over half a second when it is not (so that wherever it ends, little of
    an I-frame's excess is left unpaid); it takes the nearer to that budget of the best level within it and the next
    level up, or, while the stream is over its target and the lowest level's size is near the budget, the best level
    within it (an overspend there could not be repaid). I-frames keep the quality of the recent P-frames, as far as
    the frames left (when the count is known) could pay for it at the lowest P-frame size seen; the first frame
    takes the best level within an eighth of the buffer. No frame takes a level that would fill a leaky bucket of
    one second of the target rate beyond it while a lower level would not. A target below the lowest level's rate
    cannot be met: the stream then lands near the lowest level's rate."""

    def __init__(self, bitrate: float, fps: Fraction, qualities: Sequence[int], frame_count: int = 0):
        self.fps = float(fps)
        self.frame_bits = bitrate / self.fps
        self.buffer = float(bitrate)               # one second of the target rate
        self.qualities = sorted(qualities)
        self.frame_count = frame_count
        self.frames = 0
        self.spent = 0                             # bits so far
        self.fullness = 0.0                        # the leaky bucket: bits above the target rate, drained per frame
        self.recent_p: deque[int] = deque(maxlen=max(1, round(self.fps / 4)))
        self.lowest_p: int | None = None           # the last P-frame's size at the lowest quality

    def _fits(self, bits: int) -> bool:
        return self.fullness + bits - self.frame_bits <= self.buffer

    def choose(self, ftype: FrameType, sizes: Mapping[int, int] | Callable[[int], int]) -> int:
        """The quality for a frame whose packet would take sizes[q] (or sizes(q), asked at most once per quality)
        bits at quality q."""
        qs = self.qualities
        size = _Sizes(sizes)
        if ftype == FrameType.P:
            self.lowest_p = size(qs[0])
        left = self.frame_count - self.frames if self.frame_count > self.frames else 0
        over = self.spent - self.frame_bits * self.frames          # bits spent beyond the target so far
        if ftype == FrameType.I and (self.recent_p or not self.frames):   # (all-intra streams: as P-frames)
            if self.recent_p:
                want = sorted(self.recent_p)[len(self.recent_p) // 2]
            else:   # the first frame: the best level within an eighth of the buffer, which later frames repay
                want = qs[size.last_within(qs, self.buffer / 8)]
            if left:   # near the end, no more than the frames left can pay back at the lowest P sizes seen
                room = self.frame_bits * left - over - (left - 1) * (self.lowest_p or 0)
                while want != qs[0] and size(want) > room:
                    want = qs[qs.index(want) - 1]
        else:
            horizon = min(self.fps, left) if left else self.fps / 2
            budget = self.frame_bits - over / max(horizon, 1.0)
            i = size.last_within(qs, budget)
            if over > 0 and size(qs[0]) > 0.75 * budget:   # behind, near the floor: the best level within budget
                want = qs[i]
            else:   # the nearest (one of the two around the budget), which keeps the total on track
                want = min(qs[i:i + 2], key=lambda q: (abs(size(q) - budget), q))
        while want != qs[0] and not self._fits(size(want)):
            want = qs[qs.index(want) - 1]
        return want

    def update(self, ftype: FrameType, quality: int, bits: int) -> None:
        """Account for a coded frame."""
        self.frames += 1
        self.spent += bits
        self.fullness = max(0.0, self.fullness + bits - self.frame_bits)
        if ftype == FrameType.P:
            self.recent_p.append(quality)


class _Sizes:
    """A frame's packet size per quality, each asked for once (a size may cost a coding of the frame)."""

    def __init__(self, sizes: Mapping[int, int] | Callable[[int], int]):
        self.get = sizes.__getitem__ if isinstance(sizes, Mapping) else sizes
        self.known: dict[int, int] = {}

    def __call__(self, q: int) -> int:
        if q not in self.known:
            self.known[q] = int(self.get(q))
        return self.known[q]

    def last_within(self, qs: Sequence[int], limit: float) -> int:
        """The index of the highest quality of qs (ascending) whose size is within limit, by bisection (sizes rise
        with quality); 0 when none is."""
        lo, hi = 0, len(qs) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self(qs[mid]) <= limit:
                lo = mid
            else:
                hi = mid - 1
        return lo


def parse_bitrate(text: str | float | int) -> float:
    """Bits per second from 300k, 1.5M, 2500000 (k = 1000, M = 10^6); ValueError unless in 1 bit/s .. 10 Gbit/s."""
    if isinstance(text, bool):
        raise ValueError(f"bitrate must be bits per second such as 300k or 1.5M, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        t = str(text).strip()
        scale = {"k": 1e3, "K": 1e3, "m": 1e6, "M": 1e6}.get(t[-1:], 1.0)
        try:
            value = float(t[:-1] if scale != 1.0 else t) * scale
        except ValueError:
            raise ValueError(f"bitrate must be bits per second such as 300k or 1.5M, got {text!r}") from None
    if not (1.0 <= value <= 1e10):   # also refuses nan and inf
        raise ValueError(f"bitrate must be between 1 bit/s and 10 Gbit/s, got {text!r}")
    return value
