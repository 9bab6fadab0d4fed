"""Encoder-side block motion estimation (quarter-pel), block-constant warping and motion-vector prediction."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

QPEL = 4  # motion vectors are stored in quarter pixels
MOTION_MERGE = 0.001  # default tolerance of the merge (mean absolute luma), chosen on the validation clips
# How a vector is predicted before its residual is coded (ModelConfig.mv_coding):
MV_LEFT = 0    # the left neighbour's (first column: the one above); models up to 1.11
MV_MEDIAN = 1  # the component-wise median of left, above and above-right (last column: above-left)
MV_CODINGS = (MV_LEFT, MV_MEDIAN)


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (B, 1, H, W) of RGB (B, 3, H, W)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def block_warp(ref: torch.Tensor, mv: torch.Tensor, block: int) -> torch.Tensor:
    """Warp ref (B, C, H, W) by block-constant vectors mv (B, 2, H/block, W/block) in quarter pels (x, y)."""
    _, _, h, w = ref.shape
    flow = F.interpolate(mv.to(ref.dtype) / QPEL, scale_factor=block, mode="nearest")
    ys = torch.arange(h, dtype=ref.dtype, device=ref.device).view(1, h, 1)
    xs = torch.arange(w, dtype=ref.dtype, device=ref.device).view(1, 1, w)
    return _sample(ref, xs + flow[:, 0], ys + flow[:, 1])


def _sample(ref: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ref (B, C, H, W) sampled bilinearly at pixel positions x, y (broadcast to (B, h', w')), the border
    repeated: the one place that turns pixel positions into grid_sample's coordinates."""
    _, _, h, w = ref.shape
    gx, gy = torch.broadcast_tensors(x * (2.0 / max(w - 1, 1)) - 1.0, y * (2.0 / max(h - 1, 1)) - 1.0)
    return F.grid_sample(ref, torch.stack([gx, gy], dim=-1), mode="bilinear", padding_mode="border",
                         align_corners=True)


def _full_search(cur: torch.Tensor, ref: torch.Tensor, block: int, radius: int, lam: float) -> torch.Tensor:
    """Exhaustive integer search; returns vectors in whole pixels (B, 2, bh, bw)."""
    b, _, h, w = cur.shape
    padded = F.pad(ref, (radius, radius, radius, radius), mode="replicate")
    best_cost = None
    best = torch.zeros(b, 2, h // block, w // block, dtype=torch.long, device=cur.device)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = padded[:, :, radius + dy: radius + dy + h, radius + dx: radius + dx + w]
            cost = F.avg_pool2d((cur - shifted).abs(), block)[:, 0] + lam * (abs(dx) + abs(dy))
            if best_cost is None:
                best_cost = cost
                best[:, 0], best[:, 1] = dx, dy
            else:
                better = cost < best_cost
                best_cost = torch.where(better, cost, best_cost)
                best[:, 0][better] = dx
                best[:, 1][better] = dy
    return best


def _block_patches(ref: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """Patches (B, bh, bw, size, size) of a padded luma (B, 1, Hp, Wp) with per-block top-left corners."""
    _, _, hp, wp = ref.shape
    offs = torch.arange(size, device=ref.device)
    b = torch.arange(ref.shape[0], device=ref.device).view(-1, 1, 1) * (hp * wp)
    corner = (b + top * wp + left)[..., None, None]        # (B, bh, bw, 1, 1) flat index of the corner
    return torch.take(ref, corner + (offs[:, None] * wp + offs[None, :]))


def _shifted(patch: torch.Tensor, margin: int, block: int, oy: float, ox: float) -> torch.Tensor:
    """Bilinear sample of every patch's centre block moved by (oy, ox) pixels (|offset| < margin)."""
    iy, ix = math.floor(oy), math.floor(ox)
    fy, fx = oy - iy, ox - ix
    y0, x0 = margin + iy, margin + ix

    def at(dy: int, dx: int) -> torch.Tensor:
        return patch[..., y0 + dy: y0 + dy + block, x0 + dx: x0 + dx + block]

    if not fx and not fy:
        return at(0, 0)
    out = at(0, 0) * ((1 - fy) * (1 - fx))
    if fx:
        out = out + at(0, 1) * ((1 - fy) * fx)
    if fy:
        out = out + at(1, 0) * (fy * (1 - fx))
        if fx:
            out = out + at(1, 1) * (fy * fx)
    return out


def _refine(cur: torch.Tensor, ref: torch.Tensor, block: int, mv_q: torch.Tensor, lam: float,
            steps: tuple[int, ...]) -> torch.Tensor:
    """Per-block local search around mv_q (quarter pels): for each step, try best + step * {-1, 0, 1}^2.

    Each step cuts one patch per block around its current best vector, so a candidate is a slice of it.
    """
    b, _, h, w = cur.shape
    bh, bw = h // block, w // block
    margin = max(steps) // QPEL + 2
    pad = int(mv_q.abs().max()) // QPEL + sum(steps) // QPEL + margin + 2
    refp = F.pad(ref, (pad, pad, pad, pad), mode="replicate")
    ys = torch.arange(bh, device=cur.device).view(1, bh, 1) * block + pad - margin
    xs = torch.arange(bw, device=cur.device).view(1, 1, bw) * block + pad - margin
    cur_blocks = cur[:, 0].reshape(b, bh, block, bw, block).permute(0, 1, 3, 2, 4)
    best = mv_q.clone()
    best_cost = None
    for step in steps:
        base = torch.div(best, QPEL, rounding_mode="floor")
        patch = _block_patches(refp, ys + base[:, 1], xs + base[:, 0], block + 2 * margin)

        def cost(cand: torch.Tensor) -> torch.Tensor:
            off = cand - base * QPEL                      # quarter pels from the patch centre, per block
            key = off[:, 1] * 1024 + off[:, 0]
            keys = torch.unique(key).tolist()
            sad = torch.empty(b, bh, bw, dtype=cur.dtype, device=cur.device)
            for k in keys:
                ox = (k + 512) % 1024 - 512
                oy = (k - ox) // 1024
                part = (cur_blocks - _shifted(patch, margin, block, oy / QPEL, ox / QPEL)).abs().mean((-1, -2))
                if len(keys) == 1:
                    sad = part
                else:
                    sel = key == k
                    sad[sel] = part[sel]
            return sad + lam * cand.abs().sum(1).to(cur.dtype) / QPEL

        if best_cost is None:
            best_cost = cost(best)
        centre = best.clone()
        for dy in (-step, 0, step):
            for dx in (-step, 0, step):
                if dx == 0 and dy == 0:
                    continue
                cand = centre.clone()
                cand[:, 0] += dx
                cand[:, 1] += dy
                c = cost(cand)
                better = c < best_cost
                best_cost = torch.where(better, c, best_cost)
                best = torch.where(better[:, None], cand, best)
    return best


@torch.no_grad()
def estimate_motion(cur: torch.Tensor, ref: torch.Tensor, block: int = 16, search: int = 16,
                    lam: float = 0.002, tol: float = 0.003, finest: int = 1,
                    merge: float = MOTION_MERGE, coding: int = MV_LEFT) -> torch.Tensor:
    """Quarter-pel block vectors (B, 2, H/block, W/block) int64 that best predict cur from ref (both RGB).

    Exhaustive search at 1/4 resolution (when the frame allows), then per-block refinement at full
    resolution by 2 and 1 pixels, then half and quarter pixels (down to `finest` quarter pels: 2 stops at half
    pixels); then blocks that the frame's median vector (or zero) predicts within `tol` mean absolute luma take
    it; last, with `merge` > 0, blocks that their predictor under `coding` (MV_LEFT: _prefer_neighbours,
    MV_MEDIAN: _prefer_median) predicts within `merge` take it.
    """
    cy, ry = luma(cur.float()), luma(ref.float())
    scale = 4 if block % 4 == 0 and min(cur.shape[-2:]) >= 4 * block else 1
    c_s = F.avg_pool2d(cy, scale) if scale > 1 else cy
    r_s = F.avg_pool2d(ry, scale) if scale > 1 else ry
    mv = _full_search(c_s, r_s, block // scale, max(1, search // scale), lam * scale) * (QPEL * scale)
    steps = tuple(st for st in ((2 * QPEL, QPEL, 2, 1) if scale > 1 else (2, 1)) if st >= finest)
    if steps:
        mv = _refine(cy, ry, block, mv, lam, steps)
    mv = _prefer_uniform(cy, ry, block, mv, tol)
    if merge <= 0:
        return mv
    return (_prefer_median if coding == MV_MEDIAN else _prefer_neighbours)(cy, ry, block, mv, merge)


def _prefer_uniform(cur: torch.Tensor, ref: torch.Tensor, block: int, mv: torch.Tensor, tol: float) -> torch.Tensor:
    """Replace a block's vector by zero or by the frame's median vector where that predicts almost as well.

    Flat or noisy blocks otherwise pick arbitrary vectors; uniform fields cost almost nothing to send.
    """
    def sad(field: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d((cur - block_warp(ref, field, block)).abs(), block)[:, 0]

    best = sad(mv)
    med = mv.flatten(2).median(dim=2).values[:, :, None, None].expand_as(mv)
    for cand in (med, torch.zeros_like(mv)):
        c = sad(cand)
        take = c <= best + tol
        mv = torch.where(take[:, None], cand, mv)
        best = torch.where(take, c, best)
    return mv


def _prefer_neighbours(cur: torch.Tensor, ref: torch.Tensor, block: int, mv: torch.Tensor,
                       tol: float) -> torch.Tensor:
    """Give a block the vector it is coded against (mv_to_residual: the left neighbour's, in the first column
    the upper one's) where that predicts within `tol` mean absolute luma of its own: a zero residual is the
    cheapest motion symbol. Column by column (the rows of the first column one by one), since each choice moves
    the next block's predictor."""
    mv = mv.clone()
    bh, bw = mv.shape[-2:]
    rows = torch.arange(bh, device=mv.device)

    def sad(ii: torch.Tensor, j: int, vec: torch.Tensor) -> torch.Tensor:
        return _blocks_sad(cur, ref, block, ii, torch.full_like(ii, j), vec)

    own = sad(rows, 0, mv[..., 0])
    for i in range(1, bh):                   # first column: against the block above
        cand = mv[:, :, i - 1: i, 0]
        take = sad(rows[i: i + 1], 0, cand)[:, 0] <= own[:, i] + tol
        mv[:, :, i, 0] = torch.where(take[:, None], cand[..., 0], mv[:, :, i, 0])
    for j in range(1, bw):                   # the other columns: against the left neighbour
        cand = mv[..., j - 1]
        if torch.equal(cand, mv[..., j]):
            continue
        take = sad(rows, j, cand) <= sad(rows, j, mv[..., j]) + tol
        mv[..., j] = torch.where(take[:, None], cand, mv[..., j])
    return mv


def _blocks_sad(cur: torch.Tensor, ref: torch.Tensor, block: int, ii: torch.Tensor, jj: torch.Tensor,
                vec: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference (B, K) of the blocks (ii[k], jj[k]) of cur against ref warped by vec (B, 2, K),
    computed as block_warp does it, on those blocks only."""
    b, c = cur.shape[:2]
    off = torch.arange(block, device=cur.device)
    ys, xs = ii[:, None] * block + off, jj[:, None] * block + off                       # (K, block)
    flow = vec.to(ref.dtype) / QPEL
    y = ys.to(ref.dtype)[None, :, :, None] + flow[:, 1, :, None, None]                 # (B, K, block, 1)
    x = xs.to(ref.dtype)[None, :, None, :] + flow[:, 0, :, None, None]                 # (B, K, 1, block)
    y, x = torch.broadcast_tensors(y, x)
    k = ii.numel()
    warped = _sample(ref, x.reshape(b, k * block, block), y.reshape(b, k * block, block))
    blocks = cur[:, :, ys[:, :, None], xs[:, None, :]]                                  # (B, C, K, block, block)
    return (blocks - warped.view(b, c, k, block, block)).abs().mean((1, 3, 4))


def _prefer_median(cur: torch.Tensor, ref: torch.Tensor, block: int, mv: torch.Tensor, tol: float) -> torch.Tensor:
    """_prefer_neighbours for MV_MEDIAN: a block takes its median prediction where that predicts within `tol`
    mean absolute luma of its own vector. Wavefront by wavefront, since each choice moves later predictions."""
    mv = mv.clone()
    own = F.avg_pool2d((cur - block_warp(ref, mv, block)).abs(), block)[:, 0]           # (B, bh, bw)
    for ii, jj in _wavefronts(*mv.shape[-2:], like=lambda a, b: torch.arange(a, b, device=mv.device)):
        cand, mine = _median_at(mv, ii, jj), mv[..., ii, jj]
        differ = (cand != mine).any(1)
        if not bool(differ.any()):
            continue
        take = differ & (_blocks_sad(cur, ref, block, ii, jj, cand) <= own[:, ii, jj] + tol)
        mv[..., ii, jj] = torch.where(take[:, None], cand, mine)
    return mv


def _median_at(mv, ii, jj):
    """The MV_MEDIAN prediction (..., 2, K) of blocks (ii[k], jj[k]) from the vectors mv (..., 2, bh, bw) (numpy
    or torch, integer): the component-wise median of the left, upper and upper-right neighbours (in the last
    column the upper-left one instead of the upper-right); in the first row the left neighbour, in the first
    column the upper one, zero for the first block. Only neighbours before a block in wavefront order (2 i + j)
    are read, so a decoder can rebuild a field one wavefront at a time."""
    xp = torch if isinstance(mv, torch.Tensor) else np
    bw = mv.shape[-1]
    up, left = xp.clip(ii - 1, 0, None), xp.clip(jj - 1, 0, None)
    lft, top = mv[..., ii, left], mv[..., up, jj]
    third = mv[..., up, xp.where(jj + 1 < bw, jj + 1, left)]
    med = xp.maximum(xp.minimum(lft, top), xp.minimum(xp.maximum(lft, top), third))
    return xp.where(ii == 0, xp.where(jj == 0, xp.zeros_like(lft), lft), xp.where(jj == 0, top, med))


def _wavefronts(bh: int, bw: int, like=np.arange):
    """(ii, jj) of the blocks with 2 i + j = t, for t in order: each block's MV_MEDIAN neighbours come earlier."""
    for t in range(2 * (bh - 1) + bw):
        ii = like(max(0, (t - bw + 2) // 2), min(bh - 1, t // 2) + 1)
        yield ii, t - 2 * ii


def mv_to_residual(mv: np.ndarray, coding: int = MV_LEFT) -> np.ndarray:
    """Residuals (2, bh, bw) of vectors (2, bh, bw) from their prediction under `coding` (MV_CODINGS)."""
    mv = mv.astype(np.int64)
    if coding == MV_MEDIAN:
        bh, bw = mv.shape[-2:]
        ii, jj = (a.ravel() for a in np.meshgrid(np.arange(bh), np.arange(bw), indexing="ij"))
        return mv - _median_at(mv, ii, jj).reshape(mv.shape)
    res = mv.copy()
    res[:, :, 1:] = mv[:, :, 1:] - mv[:, :, :-1]
    res[:, 1:, 0] = mv[:, 1:, 0] - mv[:, :-1, 0]
    return res


def residual_to_mv(res: np.ndarray, coding: int = MV_LEFT) -> np.ndarray:
    """Inverse of mv_to_residual."""
    out = res.astype(np.int64).copy()
    if coding == MV_MEDIAN:
        for ii, jj in _wavefronts(*out.shape[-2:]):
            out[:, ii, jj] += _median_at(out, ii, jj)
        return out
    out[:, :, 0] = np.cumsum(out[:, :, 0], axis=1)
    return np.cumsum(out, axis=2)
