"""ClipDataset: random short clips (video crops, photos with synthetic motion, procedural video) from a prepared root."""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .motion import Motion, render_clip, sample_motion, soft_mask
from .prepare import SOURCES, SPLITS, load_manifest

DEFAULT_WEIGHTS = {"video": 0.4, "photo": 0.5, "procedural": 0.1}


def source_probs(weights: dict[str, float] | None, items: dict[str, list], who: str) -> tuple[list[str], np.ndarray]:
    """(sources with data and weight > 0, their probabilities); warns about weighted sources without data."""
    weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
    if set(weights) - set(SOURCES) or any(w < 0 for w in weights.values()):
        raise ValueError(f"weights must map {SOURCES} to non-negative numbers, got {weights}")
    missing = [s for s, w in weights.items() if w > 0 and not items[s]]
    if missing:
        warnings.warn(f"{who}: no usable {missing} data; sampling the other sources")
    sources = [s for s in SOURCES if weights.get(s, 0) > 0 and items[s]]
    if not sources:
        raise ValueError(f"{who}: no usable data with weights {weights}")
    p = np.array([weights[s] for s in sources], float)
    return sources, p / p.sum()


class ClipDataset(Dataset):
    """Random clips of `clip_len` consecutive frames, (clip_len,3,crop,crop) float32 in [0,1].

    Sample i is a deterministic function of (seed, epoch, i); len() is a nominal epoch size. Arrays are
    memory-mapped lazily per process, so DataLoader workers (fork) each open their own.
    Call set_epoch(e) to draw different samples per epoch (default epoch 0).
    """

    def __init__(self, root: str | Path = "data/", split: str = "train", clip_len: int = 4, crop: int = 128,
                 seed: int = 0, weights: dict[str, float] | None = None, length: int = 10000,
                 video_scale: tuple[float, float] = (1.0, 3.0), photo_scale: tuple[float, float] = (1.0, 2.5),
                 object_prob: float = 0.25, static_prob: float = 0.15, mode: str = "bilinear"):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if clip_len < 1 or crop < 8 or length < 1:
            raise ValueError(f"need clip_len >= 1, crop >= 8, length >= 1 (got {clip_len}, {crop}, {length})")
        self.root, self.split, self.clip_len, self.crop = Path(root), split, int(clip_len), int(crop)
        self.seed, self.length, self.epoch = int(seed), int(length), 0
        self.video_scale, self.photo_scale = video_scale, photo_scale
        self.object_prob, self.static_prob, self.mode = object_prob, static_prob, mode
        if not (self.root / "manifest.json").exists():
            raise FileNotFoundError(f"{self.root}/manifest.json not found; run python -m neuralcodec.training.data.prepare --out {self.root}")
        entries = [e for e in load_manifest(self.root) if e["split"] == split]
        self.items: dict[str, list[dict]] = {s: [] for s in SOURCES}
        for e in entries:
            if e["source"] == "photo" or self._windows(e, 1):
                self.items[e["source"]].append(e)
        self.sources, self.probs = source_probs(weights, self.items, f"ClipDataset({split}) in {self.root}")
        self._pid: int | None = None
        self._arrays: dict[str, np.ndarray] = {}

    # -- plumbing -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getstate__(self) -> dict:
        d = self.__dict__.copy()
        d["_arrays"], d["_pid"] = {}, None  # never ship open memmaps to workers
        return d

    def _array(self, e: dict) -> np.ndarray:
        if self._pid != os.getpid():  # lazily (re)open per process: fork-safe
            self._arrays, self._pid = {}, os.getpid()
        a = self._arrays.get(e["path"])
        if a is None:
            a = np.load(self.root / e["path"], mmap_mode="r")
            self._arrays[e["path"]] = a
        return a

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.length:
            raise IndexError(f"index {i} out of range for ClipDataset of length {self.length}")
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        src = self.sources[int(rng.choice(len(self.sources), p=self.probs))]
        items = self.items[src]
        e = items[int(rng.integers(len(items)))]
        if src == "photo":
            x = self._photo_clip(e, rng)
        elif src == "video":
            x = self._video_clip(e, rng, self.video_scale, reverse=True)
        else:
            x = self._video_clip(e, rng, (1.0, 1.0), reverse=False)
        return x.contiguous()

    def _windows(self, e: dict, stride: int) -> list[tuple[int, int]]:
        """(segment start, number of valid window starts) for each shot segment that holds a clip at this stride."""
        span = (self.clip_len - 1) * stride + 1
        segs = e.get("segments") or [[0, e["shape"][0]]]
        return [(a, b - a - span + 1) for a, b in segs if b - a >= span]

    # -- sources --------------------------------------------------------------------------------------------
    def _video_clip(self, e: dict, rng: np.random.Generator, scale: tuple[float, float], reverse: bool) -> torch.Tensor:
        """Random window, random (down)scale + crop, horizontal flip, optional temporal reversal."""
        a = self._array(e)
        T, H, W = a.shape[:3]
        L, C = self.clip_len, self.crop
        stride = 2 if reverse and rng.random() < 0.2 else 1  # occasional faster motion
        wins = self._windows(e, stride)
        if not wins:
            stride, wins = 1, self._windows(e, 1)
        counts = np.array([n for _, n in wins], float)  # never cross a scene cut
        a0, n = wins[int(rng.choice(len(wins), p=counts / counts.sum()))]
        t0 = a0 + int(rng.integers(0, n))
        fmax = min(scale[1], H / C, W / C)
        fmin = min(scale[0], fmax)
        f = math.exp(rng.uniform(math.log(fmin), math.log(fmax))) if fmax > fmin else fmax
        R = max(1, min(H, W, int(round(C * f))))
        y, x = int(rng.integers(0, H - R + 1)), int(rng.integers(0, W - R + 1))
        clip = np.array(a[t0:t0 + (L - 1) * stride + 1:stride, y:y + R, x:x + R])
        out = torch.from_numpy(clip).permute(0, 3, 1, 2).float().div_(255.0)
        if R != C:
            out = F.interpolate(out, size=(C, C), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)
        if rng.random() < 0.5:
            out = out.flip(-1)
        if reverse and rng.random() < 0.5:
            out = out.flip(0)
        return out

    def _photo_clip(self, e: dict, rng: np.random.Generator) -> torch.Tensor:
        """Synthetic camera motion over a photo, random flips, sometimes a moving foreground object."""
        img = self._array(e)
        m = sample_motion(rng, scale_range=self.photo_scale, static_prob=self.static_prob)
        out = render_clip(img, m, self.clip_len, self.crop, rng=rng, mode=self.mode)
        if rng.random() < self.object_prob:
            out = self._paste_object(out, rng)
        if rng.random() < 0.5:
            out = out.flip(-1)
        if rng.random() < 0.2:
            out = out.flip(-2)
        return out

    def _paste_object(self, bg: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Composite a soft-edged patch from another photo moving with its own velocity."""
        L, C = self.clip_len, self.crop
        photos = self.items["photo"]
        fg_img = self._array(photos[int(rng.integers(len(photos)))])
        u = (float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6)))
        fg = render_clip(fg_img, Motion(scale=float(rng.uniform(*self.photo_scale)), velocity=u),
                         L, C, rng=rng, mode=self.mode)
        radius = (float(rng.uniform(0.1, 0.3) * C), float(rng.uniform(0.1, 0.3) * C))
        m0 = (float(rng.uniform(0.2, 0.8) * C), float(rng.uniform(0.2, 0.8) * C))
        ellipse = bool(rng.random() < 0.5)
        masks = torch.stack([soft_mask(C, (m0[0] + u[0] * t, m0[1] + u[1] * t), radius, ellipse) for t in range(L)])
        masks = masks[:, None]
        return bg * (1 - masks) + fg * masks
