"""Encoder-side block motion estimation (quarter-pel), block-constant warping and motion-vector prediction."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

QPEL = 4  # motion vectors are stored in quarter pixels


def luma(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (B, 1, H, W) of RGB (B, 3, H, W)."""
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def block_warp(ref: torch.Tensor, mv: torch.Tensor, block: int) -> torch.Tensor:
    """Warp ref (B, C, H, W) by block-constant vectors mv (B, 2, H/block, W/block) in quarter pels (x, y)."""
    b, _, h, w = ref.shape
    flow = F.interpolate(mv.to(ref.dtype) / QPEL, scale_factor=block, mode="nearest")
    ys = torch.arange(h, dtype=ref.dtype, device=ref.device).view(1, h, 1)
    xs = torch.arange(w, dtype=ref.dtype, device=ref.device).view(1, 1, w)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(ref, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _block_cost(cur: torch.Tensor, pred: torch.Tensor, block: int, mv: torch.Tensor, lam: float) -> torch.Tensor:
    sad = F.avg_pool2d((cur - pred).abs(), block)[:, 0]
    return sad + lam * mv.abs().sum(1).to(sad.dtype) / QPEL


def _full_search(cur: torch.Tensor, ref: torch.Tensor, block: int, radius: int, lam: float) -> torch.Tensor:
    """Exhaustive integer search; returns vectors in whole pixels (B, 2, bh, bw)."""
    b, _, h, w = cur.shape
    padded = F.pad(ref, (radius, radius, radius, radius), mode="replicate")
    best_cost = None
    best = torch.zeros(b, 2, h // block, w // block, dtype=torch.long)
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


def _refine(cur: torch.Tensor, ref: torch.Tensor, block: int, mv_q: torch.Tensor, step: int, lam: float) -> torch.Tensor:
    """Try mv + step * {-1, 0, 1}^2 (quarter pels) per block and keep the cheapest."""
    best = mv_q.clone()
    best_cost = _block_cost(cur, block_warp(ref, mv_q, block), block, mv_q, lam)
    for dy in (-step, 0, step):
        for dx in (-step, 0, step):
            if dx == 0 and dy == 0:
                continue
            cand = mv_q.clone()
            cand[:, 0] += dx
            cand[:, 1] += dy
            cost = _block_cost(cur, block_warp(ref, cand, block), block, cand, lam)
            better = cost < best_cost
            best_cost = torch.where(better, cost, best_cost)
            best = torch.where(better[:, None], cand, best)
    return best


@torch.no_grad()
def estimate_motion(cur: torch.Tensor, ref: torch.Tensor, block: int = 16, search: int = 16,
                    lam: float = 0.002) -> torch.Tensor:
    """Quarter-pel block vectors (B, 2, H/block, W/block) int64 that best predict cur from ref (both RGB)."""
    cy, ry = luma(cur.float()), luma(ref.float())
    levels = 2 if block % 4 == 0 and min(cur.shape[-2:]) >= 4 * block else 0
    scale = 2 ** levels
    c_s = F.avg_pool2d(cy, scale) if scale > 1 else cy
    r_s = F.avg_pool2d(ry, scale) if scale > 1 else ry
    mv = _full_search(c_s, r_s, block // scale, max(1, search // scale), lam * scale) * QPEL
    for lvl in range(levels - 1, -1, -1):  # refine by whole pixels at 1/2 then full resolution
        s = 2 ** lvl
        mv = mv * 2
        c_l = F.avg_pool2d(cy, s) if s > 1 else cy
        r_l = F.avg_pool2d(ry, s) if s > 1 else ry
        mv = _refine(c_l, r_l, block // s, mv, QPEL, lam * s)
    mv = _refine(cy, ry, block, mv, 2, lam)   # half pel
    mv = _refine(cy, ry, block, mv, 1, lam)   # quarter pel
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
