"""PackDataset: a .ncpack decoded once into memory (CPU or GPU) and sampled in whole batches with torch ops."""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .dataset import source_probs
from .motion import Motion, _extent, fit_motion, frame_affines
from .prepare import SOURCES, SPLITS
_MARGIN = 3  # source px kept between a photo view and the edge of the region that is resampled
_NU = 24  # uniforms drawn per sample


class PackDataset:
    """Random clips (B, clip_len, 3, crop, crop) float32 in [0,1] drawn from one split of a pack file.

    Every sample picks a source by `weights`; video/procedural: `clip_len` consecutive frames at temporal stride
    1 or 2 inside one shot (videos sometimes reversed); photos: synthetic camera motion (pan, zoom, small rotation,
    static with `static_prob`) rendered by one batched grid_sample. Crops cover 1x-`max_scale`x the crop size and
    are area-downscaled; then a random horizontal flip and, rarely, slight noise or blur. A batch depends only on
    the generator's state.
    """

    def __init__(self, path: str | Path, split: str = "train", clip_len: int = 3, crop: int = 128, seed: int = 0,
                 device: str | torch.device = "cpu", weights: dict[str, float] | None = None,
                 max_scale: float = 2.0, stride2_prob: float = 0.3, static_prob: float = 0.15,
                 noise_prob: float = 0.1, blur_prob: float = 0.1):
        from ..pack import iter_pack

        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if clip_len < 1 or crop < 8 or max_scale < 1:
            raise ValueError(f"need clip_len >= 1, crop >= 8, max_scale >= 1 (got {clip_len}, {crop}, {max_scale})")
        self.path, self.split, self.clip_len, self.crop = Path(path), split, int(clip_len), int(crop)
        self.device, self.max_scale = torch.device(device), float(max_scale)
        self.stride2_prob, self.static_prob = stride2_prob, static_prob
        self.noise_prob, self.blur_prob = noise_prob, blur_prob
        self.generator = torch.Generator().manual_seed(int(seed))
        self.items: dict[str, list[tuple[str, torch.Tensor, list[np.ndarray]]]] = {s: [] for s in SOURCES}
        small = []
        for it, a in iter_pack(self.path, split):
            h, w = a.shape[-3:-1]
            if min(h, w) < self.crop + (2 * _MARGIN + 2 if it["source"] == "photo" else 0):
                small.append(f"{it['source']}/{it['name']} {w}x{h}")
                continue
            if it["source"] == "photo":
                t = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).contiguous()
                self.items["photo"].append((it["name"], t.to(self.device), []))
                continue
            starts = [self._starts(it["segments"], s) for s in (1, 2)]
            if len(starts[0]):
                t = torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).contiguous()
                self.items[it["source"]].append((it["name"], t.to(self.device), starts))
        if small:   # whole clips the training never sees (a validation clip's own source among them, maybe)
            warnings.warn(f"PackDataset({split}) of {self.path}: {len(small)} items smaller than the {self.crop}-pixel "
                          f"crop are left out: {', '.join(small[:12])}{' ...' if len(small) > 12 else ''}")
        self.sources, probs = source_probs(weights, self.items, f"PackDataset({split}) of {self.path}")
        self.cum_probs = np.cumsum(probs)
        self._fixed: dict[tuple[int, int], torch.Tensor] = {}

    def _starts(self, segments: list[list[int]], stride: int) -> np.ndarray:
        """Every first frame of a window of clip_len frames at this stride that stays inside one shot."""
        span = (self.clip_len - 1) * stride + 1
        return np.concatenate([np.arange(a, b - span + 1) for a, b in segments] + [np.zeros(0, np.int64)])

    def __repr__(self) -> str:
        n = {s: len(v) for s, v in self.items.items()}
        return f"PackDataset({str(self.path)!r}, split={self.split!r}, items={n}, device={self.device})"

    # -- sampling -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch (batch_size, clip_len, 3, crop, crop) float32 in [0,1] on the dataset's device."""
        g = self.generator if generator is None else generator
        B, L, C = int(batch_size), self.clip_len, self.crop
        u = torch.rand(B, _NU, generator=g, dtype=torch.float64, device=g.device).cpu().numpy()
        noise_seed = int(torch.randint(0, 2**62, (1,), generator=g, device=g.device))
        out = torch.empty(B, L, 3, C, C, device=self.device)
        src = np.searchsorted(self.cum_probs, u[:, 0] * self.cum_probs[-1], side="right").clip(0, len(self.sources) - 1)
        photos = []
        for b in range(B):
            s = self.sources[src[b]]
            if s == "photo":
                photos.append(b)
            else:
                out[b] = self._clip(self.items[s], u[b], reverse=s == "video")
        if photos:
            out[photos] = self._photos([u[b] for b in photos])
        self._augment(out, u, noise_seed)
        return out

    def _clip(self, items: list, u: np.ndarray, reverse: bool) -> torch.Tensor:
        """clip_len frames of a video at stride 1 or 2, a square crop of 1x-max_scale x crop, area-resized."""
        L, C = self.clip_len, self.crop
        _, frames, starts = items[min(int(u[1] * len(items)), len(items) - 1)]
        stride = 2 if u[2] < self.stride2_prob and len(starts[1]) else 1
        st = starts[stride - 1]
        t0 = int(st[min(int(u[3] * len(st)), len(st) - 1)])
        H, W = frames.shape[-2:]
        fmax = min(self.max_scale, H / C, W / C)
        R = min(H, W, int(round(C * math.exp(u[4] * math.log(max(fmax, 1.0))))))
        y, x = int(u[5] * (H - R + 1)), int(u[6] * (W - R + 1))
        clip = frames[t0:t0 + (L - 1) * stride + 1:stride, :, y:y + R, x:x + R].float().div_(255.0)
        if R != C:  # as one image of L*3 channels: the area kernel runs about twice as fast than on L images
            clip = F.interpolate(clip.reshape(1, -1, R, R), size=(C, C), mode="area").view(-1, 3, C, C)
        if reverse and u[7] < 0.5:
            clip = clip.flip(0)
        return clip

    def _motion(self, u: np.ndarray) -> Motion:
        """Random camera motion from uniforms u[8:19] (as motion.sample_motion, scale in [1, max_scale])."""
        scale = math.exp(u[8] * math.log(self.max_scale))
        if u[9] < self.static_prob:
            return Motion(scale=scale)
        vmax = 6.0 if u[10] < 0.6 else 1.5  # many small, sub-pixel motions too
        v = tuple(0.0 if u[11 + k] < 0.25 else (2 * u[13 + k] - 1) * vmax for k in range(2))
        zoom = 0.97 + 0.06 * u[16] if u[15] < 0.4 else 1.0
        rot = 2 * u[18] - 1.0 if u[17] < 0.3 else 0.0
        return Motion(scale=scale, velocity=v, zoom=zoom, rotation=rot)

    def _photos(self, us: list[np.ndarray]) -> torch.Tensor:
        """Render every photo sample with one batched affine_grid + grid_sample; returns (P, L, 3, C, C)."""
        L, C = self.clip_len, self.crop
        items = self.items["photo"]
        regions, thetas = [], []
        for u in us:
            img = items[min(int(u[1] * len(items)), len(items) - 1)][1]
            H, W = img.shape[-2:]
            m = fit_motion(self._motion(u), L, C, H, W, margin=_MARGIN)
            aff = frame_affines(m, L)
            lo, hi = _extent(aff, C)
            cmin, cmax = _MARGIN - lo, np.array([W - 1, H - 1]) - _MARGIN - hi
            cx, cy = cmin + u[19:21] * np.maximum(cmax - cmin, 0)
            x0, y0 = max(0, int(math.floor(cx + lo[0])) - _MARGIN), max(0, int(math.floor(cy + lo[1])) - _MARGIN)
            x1 = min(W, int(math.ceil(cx + hi[0])) + _MARGIN + 1)
            y1 = min(H, int(math.ceil(cy + hi[1])) + _MARGIN + 1)
            region = img[None, :, y0:y1, x0:x1].float().div_(255.0)
            h, w = y1 - y0, x1 - x0
            step = m.scale / max(1.0, m.zoom ** (L - 1))  # smallest source step per output pixel
            if step > 1.01:  # area prefilter to ~1 source px per output px; normalised coordinates stay valid
                region = F.interpolate(region, size=(max(2, round(h / step)), max(2, round(w / step))), mode="area")
            fx, fy = region.shape[-1] / w, region.shape[-2] / h
            regions.append(region[0])
            th = np.empty((L, 2, 3))  # region px s = A p + b + off -> prefiltered (s + 0.5) * f; normalised later
            for row, (f, off) in enumerate(((fx, cx - x0), (fy, cy - y0))):
                th[:, row, :2] = aff[:, row, :2] * (C / 2) * f
                th[:, row, 2] = (aff[:, row, 2] + off + 0.5) * f
            thetas.append(th)
        Sh, Sw = max(r.shape[-2] for r in regions), max(r.shape[-1] for r in regions)
        buf = torch.zeros(len(us), 3, Sh, Sw, device=self.device)
        for k, r in enumerate(regions):
            buf[k, :, :r.shape[-2], :r.shape[-1]] = r
        theta = torch.from_numpy(np.stack(thetas)).float()  # (P, L, 2, 3)
        theta[:, :, 0] *= 2 / Sw
        theta[:, :, 1] *= 2 / Sh
        theta[:, :, :, 2] -= 1
        grid = F.affine_grid(theta.flatten(0, 1).to(self.device), [len(us) * L, 3, C, C], align_corners=False)
        grid = grid.view(len(us), L * C, C, 2)  # all frames of a sample read the same buffer: one call, no copies
        out = F.grid_sample(buf, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.view(len(us), 3, L, C, C).transpose(1, 2).clamp_(0.0, 1.0)

    def _augment(self, out: torch.Tensor, u: np.ndarray, noise_seed: int) -> None:
        """In place: horizontal flip (p 0.5), slight blur (blur_prob), gaussian noise of 1-4/255 (noise_prob)."""
        flip = np.flatnonzero(u[:, 21] < 0.5)
        if len(flip):
            out[flip] = out[flip].flip(-1)
        blur = np.flatnonzero(u[:, 22] < self.blur_prob)
        if len(blur):
            x = out[blur].flatten(0, 2)[:, None]  # (n*L*3, 1, C, C)
            y = F.pad(x, (1, 1, 1, 1), mode="replicate")  # separable [1 2 1]/4 (a conv2d here is ~10x slower on CPU)
            y = 0.25 * (y[..., :-2] + y[..., 2:]) + 0.5 * y[..., 1:-1]
            y = 0.25 * (y[..., :-2, :] + y[..., 2:, :]) + 0.5 * y[..., 1:-1, :]
            a = torch.from_numpy(0.3 + 0.7 * ((u[blur, 22] / self.blur_prob) % 1.0)).float().to(out.device)
            out[blur] = torch.lerp(x, y, a.repeat_interleave(x.shape[0] // len(blur))[:, None, None, None]).view_as(out[blur])
        noisy = np.flatnonzero(u[:, 23] < self.noise_prob)
        if len(noisy):
            dg = torch.Generator(device=out.device).manual_seed(noise_seed)
            sigma = torch.from_numpy((1.0 + 3.0 * ((u[noisy, 23] / self.noise_prob) % 1.0)) / 255.0).float()
            n = torch.randn(out[noisy].shape, generator=dg, device=out.device)
            out[noisy] = (out[noisy] + n * sigma.to(out.device).view(-1, 1, 1, 1, 1)).clamp_(0.0, 1.0)

    def fixed_batch(self, n: int, seed: int = 0) -> torch.Tensor:
        """The same n clips on every call (for validation curves): sample(n) from a generator seeded with seed."""
        key = (int(n), int(seed))
        if key not in self._fixed:
            self._fixed[key] = self.sample(n, torch.Generator().manual_seed(int(seed)))
        return self._fixed[key].clone()
