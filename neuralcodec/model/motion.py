"""Encoder-side block motion estimation (quarter-pel), block-constant warping and motion-vector prediction."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

QPEL = 4  # motion vectors are stored in quarter pixels
MOTION_MERGE = 0.001  # default tolerance of _prefer_neighbours (mean absolute luma), chosen on the validation clips


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
                    merge: float = MOTION_MERGE) -> torch.Tensor:
    """Quarter-pel block vectors (B, 2, H/block, W/block) int64 that best predict cur from ref (both RGB).

    Exhaustive search at 1/4 resolution (when the frame allows), then per-block refinement at full
    resolution by 2 and 1 pixels, then half and quarter pixels (down to `finest` quarter pels: 2 stops at half
    pixels); then blocks that the frame's median vector (or zero) predicts within `tol` mean absolute luma take
    it; last, with `merge` > 0, blocks that their predictor (see _prefer_neighbours) predicts within `merge` take it.
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
    return _prefer_neighbours(cy, ry, block, mv, merge) if merge > 0 else mv


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


def _column_sad(cur: torch.Tensor, ref: torch.Tensor, block: int, vec: torch.Tensor, j: int) -> torch.Tensor:
    """Mean absolute difference (B, bh) of the blocks of column j of cur against ref warped by vec (B, 2, bh),
    computed as block_warp does it, on that column only."""
    rows, x0 = vec.shape[2] * block, j * block
    flow = (vec.to(ref.dtype) / QPEL).repeat_interleave(block, dim=2)[..., None]      # (B, 2, rows, 1)
    ys = torch.arange(rows, dtype=ref.dtype, device=ref.device).view(1, rows, 1)
    xs = torch.arange(x0, x0 + block, dtype=ref.dtype, device=ref.device).view(1, 1, block)
    warped = _sample(ref, xs + flow[:, 0], ys + flow[:, 1])
    return F.avg_pool2d((cur[..., :rows, x0: x0 + block] - warped).abs(), block)[:, 0, :, 0]


def _prefer_neighbours(cur: torch.Tensor, ref: torch.Tensor, block: int, mv: torch.Tensor,
                       tol: float) -> torch.Tensor:
    """Give a block the vector it is coded against (mv_to_residual: the left neighbour's, in the first column
    the upper one's) where that predicts within `tol` mean absolute luma of its own: a zero residual is the
    cheapest motion symbol. Column by column (the rows of the first column one by one), since each choice moves
    the next block's predictor."""
    mv = mv.clone()
    own = _column_sad(cur, ref, block, mv[..., 0], 0)
    for i in range(1, mv.shape[2]):          # first column: against the block above
        cand = mv[..., 0].clone()
        cand[:, :, i] = mv[:, :, i - 1, 0]
        take = _column_sad(cur, ref, block, cand, 0)[:, i] <= own[:, i] + tol
        mv[:, :, i, 0] = torch.where(take[:, None], cand[:, :, i], mv[:, :, i, 0])
    for j in range(1, mv.shape[3]):          # the other columns: against the left neighbour
        cand = mv[..., j - 1]
        if torch.equal(cand, mv[..., j]):
            continue
        take = _column_sad(cur, ref, block, cand, j) <= _column_sad(cur, ref, block, mv[..., j], j) + tol
        mv[..., j] = torch.where(take[:, None], cand, mv[..., j])
    return mv


def mv_to_residual(mv: np.ndarray) -> np.ndarray:
    """Differences from the left neighbour (first column: from the block above) of (2, bh, bw) vectors."""
    res = mv.astype(np.int64).copy()
    res[:, :, 1:] = mv[:, :, 1:] - mv[:, :, :-1]
    res[:, 1:, 0] = mv[:, 1:, 0] - mv[:, :-1, 0]
    return res


def residual_to_mv(res: np.ndarray) -> np.ndarray:
    """Inverse of mv_to_residual."""
    out = res.astype(np.int64).copy()
    out[:, :, 0] = np.cumsum(out[:, :, 0], axis=1)
    return np.cumsum(out, axis=2)
