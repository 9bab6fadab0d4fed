"""BD-rate (Bjontegaard delta rate, pchip interpolation via the `bjontegaard` package) with graceful failure cases."""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

METHOD = "pchip"
LOW_OVERLAP = 0.5  # below this fraction of the joint quality range, a value is still given but flagged
MIN_OVERLAP = 0.1  # below this, the curves share too little of the quality range for a meaningful BD-rate


def _curve(rates: Sequence[float], quals: Sequence[float]) -> tuple[np.ndarray, np.ndarray, int]:
    """Finite points sorted by rate, keeping only those that strictly improve quality (the RD frontier).

    Returns (rates, qualities, number of dropped points)."""
    pts = [(float(r), float(q)) for r, q in zip(rates, quals)
           if r is not None and q is not None and math.isfinite(r) and r > 0 and math.isfinite(q)]
    pts.sort()
    kept: list[tuple[float, float]] = []
    for r, q in pts:
        if not kept or q > kept[-1][1]:
            kept.append((r, q))
    arr = np.array(kept, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1], len(list(zip(rates, quals))) - len(kept)


def bd_rate(rate_anchor: Sequence[float], q_anchor: Sequence[float],
            rate_test: Sequence[float], q_test: Sequence[float]) -> dict:
    """BD-rate in percent of test vs anchor (negative = test needs fewer bits for equal quality).

    Returns {"value": float or None, "reason": str or None, "overlap": fraction of the joint quality range,
    "points": [n_anchor, n_test]}. Non-finite points (e.g. PSNR inf) and points that do not improve quality
    over a lower-rate point are dropped; fewer than 2 points or quality ranges overlapping by less than MIN_OVERLAP give value None."""
    ra, qa, da = _curve(rate_anchor, q_anchor)
    rt, qt, dt = _curve(rate_test, q_test)
    res: dict = {"value": None, "reason": None, "overlap": None, "points": [len(ra), len(rt)]}
    notes = []
    if da or dt:
        notes.append(f"dropped {da} anchor / {dt} test non-finite or non-monotonic points")
    if len(ra) < 2 or len(rt) < 2:
        res["reason"] = "; ".join(notes + ["fewer than 2 usable RD points"])
        return res
    lo, hi = max(qa.min(), qt.min()), min(qa.max(), qt.max())
    total = max(qa.max(), qt.max()) - min(qa.min(), qt.min())
    overlap = max(hi - lo, 0.0) / total if total > 0 else 0.0
    res["overlap"] = overlap
    ranges = f"anchor {qa.min():.4g}..{qa.max():.4g}, test {qt.min():.4g}..{qt.max():.4g}"
    if overlap <= 0:
        res["reason"] = "; ".join(notes + [f"quality ranges do not overlap ({ranges})"])
        return res
    if overlap < MIN_OVERLAP:
        res["reason"] = "; ".join(notes + [f"quality ranges overlap by only {overlap:.1%} ({ranges}), "
                                           f"under the {MIN_OVERLAP:.0%} needed for a BD-rate"])
        return res
    import bjontegaard

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = bjontegaard.bd_rate(ra, qa, rt, qt, method=METHOD, require_matching_points=False, min_overlap=0)
    if not math.isfinite(value):
        res["reason"] = "; ".join(notes + ["BD-rate computation gave a non-finite value"])
        return res
    res["value"] = float(value)
    if overlap < LOW_OVERLAP:
        notes.append(f"quality ranges overlap by only {overlap:.0%}: the BD-rate covers only that part")
    res["reason"] = "; ".join(notes) or None
    return res


def average(per_clip: dict[str, dict]) -> dict:
    """Mean of the per-clip BD-rates that exist; None with a reason if none does."""
    vals = [r["value"] for r in per_clip.values() if r.get("value") is not None]
    missing = [c for c, r in per_clip.items() if r.get("value") is None]
    if not vals:
        return {"value": None, "n_clips": 0, "reason": "no clip has a BD-rate"}
    reason = f"mean over {len(vals)} of {len(per_clip)} clips (missing: {', '.join(missing)})" if missing else None
    return {"value": float(np.mean(vals)), "n_clips": len(vals), "reason": reason}
