"""Synthetic camera motion: render a clip from one still image with sub-pixel pan/zoom/rotation (grid_sample)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Motion:
    """Per-frame camera motion, in output (crop) pixels.

    scale: source pixels per output pixel at frame 0 (>1 = downscaled view of the source).
    velocity: (vx, vy) content motion per frame: frame t+1 at p + v shows what frame t showed at p.
    zoom: magnification factor per frame (>1 zooms in). rotation: degrees per frame.
    """

    scale: float = 1.0
    velocity: tuple[float, float] = (0.0, 0.0)
    zoom: float = 1.0
    rotation: float = 0.0

    @property
    def is_static(self) -> bool:
        return self.velocity == (0.0, 0.0) and self.zoom == 1.0 and self.rotation == 0.0


def sample_motion(rng: np.random.Generator, scale_range: tuple[float, float] = (1.0, 2.5),
                  max_velocity: float = 6.0, zoom_range: tuple[float, float] = (0.97, 1.03),
                  max_rotation: float = 1.0, static_prob: float = 0.15) -> Motion:
    """Random camera motion: static with static_prob, else a pan (each axis 0 w.p. 1/4) plus optional zoom/rotation."""
    lo, hi = scale_range
    scale = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    if rng.random() < static_prob:
        return Motion(scale=scale)
    kind = rng.random()
    vmax = max_velocity if kind < 0.6 else max_velocity / 4  # many small, sub-pixel motions too
    v = tuple(0.0 if rng.random() < 0.25 else float(rng.uniform(-vmax, vmax)) for _ in range(2))
    zoom = float(rng.uniform(*zoom_range)) if rng.random() < 0.4 else 1.0
    rot = float(rng.uniform(-max_rotation, max_rotation)) if rng.random() < 0.3 else 0.0
    return Motion(scale=scale, velocity=v, zoom=zoom, rotation=rot)


def frame_affines(m: Motion, clip_len: int) -> np.ndarray:
    """(T,2,3) float64 maps: source offset from the frame-0 centre = A_t @ p + b_t, p = output coords from the crop centre."""
    out = np.empty((clip_len, 2, 3))
    for t in range(clip_len):
        th = math.radians(m.rotation * t)
        k = m.scale / (m.zoom ** t)
        c, s = math.cos(th), math.sin(th)
        out[t, :, :2] = k * np.array([[c, -s], [s, c]])
        out[t, :, 2] = [-m.scale * m.velocity[0] * t, -m.scale * m.velocity[1] * t]
    return out


def _extent(aff: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    h = crop / 2
    corners = np.array([[-h, -h], [h, -h], [-h, h], [h, h]]).T  # (2,4)
    pts = aff[:, :, :2] @ corners + aff[:, :, 2:]  # (T,2,4)
    return pts.min(axis=(0, 2)), pts.max(axis=(0, 2))


def fit_motion(m: Motion, clip_len: int, crop: int, height: int, width: int, margin: int = 2) -> Motion:
    """Shrink m.scale (all motion scales with it) until every frame's view fits inside a height x width source."""
    lo, hi = _extent(frame_affines(m, clip_len), crop)
    ext = hi - lo
    room = np.array([width - 1 - 2 * margin, height - 1 - 2 * margin], float)
    f = float(np.min(room / np.maximum(ext, 1e-9)))
    if f >= 1.0:
        return m
    if f <= 0:
        raise ValueError(f"source {height}x{width} too small for a {crop}px crop")
    return Motion(scale=m.scale * f * 0.999, velocity=m.velocity, zoom=m.zoom, rotation=m.rotation)


def render_clip(image: np.ndarray, m: Motion, clip_len: int, crop: int, center: tuple[float, float] | None = None,
                rng: np.random.Generator | None = None, supersample: int = 1, mode: str = "bilinear",
                prefilter: bool = True) -> torch.Tensor:
    """Render (clip_len,3,crop,crop) float32 in [0,1] from an (H,W,3) uint8 image (memmap ok) moving the camera by m.

    The view is first fitted inside the image (fit_motion); `center` is the frame-0 view centre (x, y) in source
    pixel coordinates (pixel i has its centre at i), else random from rng (or the image centre).
    Anti-aliasing: with prefilter the source region is first area-downscaled (antialiased) to about 1 source px per
    sample, then every frame is sampled with sub-pixel accuracy by grid_sample at `supersample`x resolution and
    area-averaged back to crop (supersample=2 is an alternative, ~4x slower, to prefilter).
    """
    H, W = image.shape[:2]
    m = fit_motion(m, clip_len, crop, H, W)
    aff = frame_affines(m, clip_len)
    lo, hi = _extent(aff, crop)
    margin = 2
    cmin, cmax = margin - lo, np.array([W - 1, H - 1]) - margin - hi
    if center is None:
        center = (cmin + cmax) / 2 if rng is None else rng.uniform(cmin, np.maximum(cmin, cmax))
    cx, cy = float(center[0]), float(center[1])
    x0 = max(0, int(math.floor(cx + lo[0])) - margin)
    y0 = max(0, int(math.floor(cy + lo[1])) - margin)
    x1 = min(W, int(math.ceil(cx + hi[0])) + margin + 1)
    y1 = min(H, int(math.ceil(cy + hi[1])) + margin + 1)
    region = torch.from_numpy(np.array(image[y0:y1, x0:x1])).permute(2, 0, 1).float().div_(255.0)
    h, w = region.shape[1:]
    # Normalised (align_corners=False) affine per frame: output u in [-1,1] -> p = u*crop/2 -> source px -> grid.
    theta = np.empty((clip_len, 2, 3))
    half = crop / 2
    for row, (size, off) in enumerate(((w, cx - x0), (h, cy - y0))):
        theta[:, row, :2] = aff[:, row, :2] * half * 2 / size
        theta[:, row, 2] = (aff[:, row, 2] + off) * 2 / size + 1 / size - 1
    step = m.scale / max(1.0, m.zoom ** (clip_len - 1)) * supersample  # smallest source step per sample
    if prefilter and step > 1.01:  # normalised coords are resolution-independent: theta stays valid
        size = (max(2, round(h / step)), max(2, round(w / step)))
        region = F.interpolate(region[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    n = crop * supersample
    grid = F.affine_grid(torch.from_numpy(theta).float(), [clip_len, 3, n, n], align_corners=False)
    out = F.grid_sample(region.unsqueeze(0).expand(clip_len, -1, -1, -1), grid, mode=mode,
                        padding_mode="border", align_corners=False)
    if supersample > 1:
        out = F.avg_pool2d(out, supersample)
    return out.clamp_(0.0, 1.0)


def soft_mask(crop: int, center: tuple[float, float], radius: tuple[float, float], ellipse: bool) -> torch.Tensor:
    """(crop,crop) anti-aliased mask of an ellipse or rectangle (sub-pixel centre/radii, ~1 px soft edge)."""
    r = torch.arange(crop, dtype=torch.float32)
    dx = (r[None, :] - center[0]) / radius[0]
    dy = (r[:, None] - center[1]) / radius[1]
    if ellipse:
        d = (torch.sqrt(dx * dx + dy * dy) - 1) * min(radius)
    else:
        d = torch.maximum((dx.abs() - 1) * radius[0], (dy.abs() - 1) * radius[1])
    return (0.5 - d).clamp_(0.0, 1.0)
