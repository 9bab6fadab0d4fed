"""Tests for neuralcodec.training.data: writers/manifest, synthetic motion rendering and ClipDataset sampling."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import write_data_root
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from neuralcodec.training.data import ClipDataset
from neuralcodec.training.data import prepare as P
from neuralcodec.training.data.motion import Motion, fit_motion, render_clip, sample_motion

CROP, CLIP = 32, 4


def _noise_photo(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Tiny data root built with the same writers prepare.py uses."""
    r = tmp_path_factory.mktemp("data")
    write_data_root(r, (64, 48), (40, 40), _noise_photo(3), (96, 64), _noise_photo(4), (96,))
    return r


def test_manifest_round_trip(root):
    entries = P.load_manifest(root)
    assert len(entries) == 7
    for e in entries:
        a = np.load(root / e["path"], mmap_mode="r")
        assert a.dtype == np.uint8 and list(a.shape) == e["shape"]
    vid = {e["split"]: e for e in entries if e["source"] == "video"}
    assert vid["train"]["shape"][0] == 18 and vid["val"]["shape"][0] == 2
    assert [e["shape"][:2] for e in entries if e["name"] == "p_train"] == [[64, 85], [96, 128]]


@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("source", ["video", "photo", "procedural"])
def test_shape_dtype_range(root, split, source):
    clip = 2 if split == "val" else CLIP  # the tiny val clips hold 2-3 frames
    ds = ClipDataset(root, split=split, clip_len=clip, crop=CROP, seed=0, weights={source: 1.0}, length=50)
    assert len(ds) == 50
    for i in range(0, 50, 7):
        x = ds[i]
        assert x.shape == (clip, 3, CROP, CROP) and x.dtype == torch.float32
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
        assert x.std() > 0.01  # real content, not a constant


def test_mixed_sources_and_determinism(root):
    a = ClipDataset(root, clip_len=CLIP, crop=CROP, seed=5, length=40)
    b = ClipDataset(root, clip_len=CLIP, crop=CROP, seed=5, length=40)
    c = ClipDataset(root, clip_len=CLIP, crop=CROP, seed=6, length=40)
    for i in (0, 3, 17):
        assert torch.equal(a[i], b[i])
    assert not all(torch.equal(a[i], c[i]) for i in range(10))
    assert not torch.equal(a[0], a[1])
    a.set_epoch(1)
    assert not all(torch.equal(a[i], b[i]) for i in range(10))


def test_sources_are_mixed_by_weight(root, monkeypatch):
    ds = ClipDataset(root, clip_len=CLIP, crop=CROP, seed=0, length=300)
    seen = []
    for name in ("_photo_clip", "_video_clip"):
        orig = getattr(ClipDataset, name)
        monkeypatch.setattr(ds, name, lambda e, *a, _o=orig, **k: (seen.append(e["source"]), _o(ds, e, *a, **k))[1])
    for i in range(300):
        ds[i]
    frac = {s: seen.count(s) / len(seen) for s in ("video", "photo", "procedural")}
    assert abs(frac["video"] - 0.4) < 0.1 and abs(frac["photo"] - 0.5) < 0.1 and 0.03 < frac["procedural"] < 0.2


def test_index_out_of_range(root):
    ds = ClipDataset(root, clip_len=CLIP, crop=CROP, length=5)
    with pytest.raises(IndexError):
        ds[5]


def test_static_photo_clip_is_static(root):
    img = _noise_photo(7)
    for scale in (1.0, 1.7):
        x = render_clip(img, Motion(scale=scale), CLIP, CROP, rng=np.random.default_rng(0))
        assert (x - x[0:1]).abs().max() < 1e-5
    ds = ClipDataset(root, clip_len=CLIP, crop=CROP, weights={"photo": 1}, static_prob=1.0, object_prob=0.0, length=20)
    for i in range(20):
        x = ds[i]
        assert (x - x[0:1]).abs().max() < 1e-5


def test_sample_motion_ranges():
    rng = np.random.default_rng(0)
    ms = [sample_motion(rng) for _ in range(500)]
    assert 0.05 < np.mean([m.is_static for m in ms]) < 0.3
    assert all(abs(v) <= 6 for m in ms for v in m.velocity)
    assert all(0.97 <= m.zoom <= 1.03 and abs(m.rotation) <= 1 and 1 <= m.scale <= 2.5 for m in ms)
    assert any(m.zoom != 1 for m in ms) and any(m.rotation != 0 for m in ms)


@settings(max_examples=25, deadline=None)
@given(vx=st.integers(-6, 6), vy=st.integers(-6, 6), seed=st.integers(0, 1000))
def test_integer_pan_shifts_content(vx, vy, seed):
    img = _noise_photo(seed % 3)
    x = render_clip(img, Motion(scale=1.0, velocity=(float(vx), float(vy))), 3, CROP, rng=np.random.default_rng(seed))
    m = 7  # interior margin > |v|
    for t in range(2):
        a = x[t, :, m - vy:CROP - m - vy, m - vx:CROP - m - vx]  # frame t at p - v ...
        b = x[t + 1, :, m:CROP - m, m:CROP - m]  # ... equals frame t+1 at p
        assert (a - b).abs().max() < 1e-3
    if (vx, vy) != (0, 0):
        assert (x[1] - x[0]).abs().max() > 0.05


def test_subpixel_pan_on_linear_ramp():
    """Bilinear sampling is exact on a linear ramp, so a 0.25 px/frame pan changes values by exactly 0.25 * slope."""
    ramp = np.broadcast_to((np.arange(200) + 20).astype(np.uint8)[None, :, None], (60, 200, 3)).copy()
    x = render_clip(ramp, Motion(scale=1.0, velocity=(0.25, 0.0)), 4, CROP, center=(100.3, 30.0))
    d = (x[:-1] - x[1:])[:, :, 4:-4, 4:-4] * 255  # content moves right: values drop by 0.25 per frame
    assert torch.allclose(d, torch.full_like(d, 0.25), atol=1e-3)


def test_zoom_and_rotation_change_frames_but_keep_centre():
    img = np.zeros((200, 200, 3), np.uint8)
    img[95:105, 95:105] = 255  # bright square at the view centre stays put under zoom/rotation about it
    for m in (Motion(scale=1.0, zoom=1.03), Motion(scale=1.0, rotation=1.0)):
        x = render_clip(img, m, 4, 64, center=(99.5, 99.5))
        assert (x[3] - x[0]).abs().max() > 0.05
        c = x[:, :, 28:36, 28:36]
        assert c.min() > 0.9


def test_fit_motion_keeps_view_inside_small_source():
    m = fit_motion(Motion(scale=2.5, velocity=(6.0, 6.0)), 8, 64, 100, 100)
    assert m.scale < 2.5 and m.velocity == (6.0, 6.0)
    with pytest.raises(ValueError):
        fit_motion(Motion(), 4, 64, 3, 3)


def test_video_clip_never_crosses_a_scene_cut(tmp_path):
    frames = np.zeros((12, 40, 40, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(40, dtype=np.uint8)[None, None, :]  # gentle texture
    frames[6:] += 200  # hard cut before frame 6
    e = P.write_clip(tmp_path, "video", "cut", "train", frames)
    assert e["segments"] == [[0, 6], [6, 12]]
    P.write_manifest(tmp_path, [e])
    ds = ClipDataset(tmp_path, clip_len=4, crop=16, weights={"video": 1}, length=60)
    for i in range(60):
        mean = ds[i].mean(dim=(1, 2, 3))
        assert float(mean.max() - mean.min()) < 0.1


def test_train_and_val_splits_differ(root):
    tr = ClipDataset(root, "train", clip_len=2, crop=CROP, seed=0, length=30)
    va = ClipDataset(root, "val", clip_len=2, crop=CROP, seed=0, length=30)
    paths = lambda d: {e["path"] for es in d.items.values() for e in es}  # noqa: E731
    assert paths(tr).isdisjoint(paths(va))
    assert not any(torch.equal(tr[i], va[i]) for i in range(30))


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader(root, workers):
    ds = ClipDataset(root, clip_len=CLIP, crop=CROP, seed=3, length=8)
    ds[0]  # open memmaps in the parent first: workers must reopen their own
    dl = DataLoader(ds, batch_size=4, num_workers=workers)
    batches = list(dl)
    assert [b.shape for b in batches] == [(4, CLIP, 3, CROP, CROP)] * 2
    assert torch.equal(batches[1][2], ds[6])


def test_bad_inputs(root, tmp_path):
    with pytest.raises(ValueError):
        ClipDataset(root, split="test")
    with pytest.raises(FileNotFoundError, match="prepare"):
        ClipDataset(tmp_path / "nothing")
    with pytest.raises(ValueError):
        ClipDataset(root, weights={"audio": 1.0})
    with pytest.raises(ValueError), pytest.warns(UserWarning):
        ClipDataset(root, clip_len=50, weights={"video": 1})  # no clip that long
    with pytest.raises(ValueError):
        P.write_clip(tmp_path, "video", "x", "train", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError):
        P.write_photo(tmp_path, "x", "holdout", _noise_photo(0))


def test_collect_photos_and_split(tmp_path):
    from PIL import Image

    def img(p, w, h, color=(0, 0, 0)):
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), color).save(p)

    wp = tmp_path / "usr/share/wallpapers/Foo/contents"
    img(wp / "images/100x50.png", 100, 50)
    img(wp / "images/200x100.png", 200, 100)
    img(wp / "images_dark/120x60.png", 120, 60)
    img(wp / "screenshot.png", 10, 10)
    bg = tmp_path / "usr/share/backgrounds"
    img(bg / "gnome/grid-l.webp", 20, 20, (200, 200, 200))
    img(bg / "gnome/grid-d.webp", 20, 20)
    img(bg / "copy/grid-d.webp", 20, 20)  # byte-identical to gnome/grid-d.webp
    (bg / "gnome/link.webp").symlink_to(bg / "gnome/grid-l.webp")
    img(bg / "sway/Sway_Blue_1136x640.png", 30, 20, (0, 0, 255))
    img(bg / "sway/Sway_Blue_2048x1536_Portrait.png", 20, 30, (0, 0, 254))
    (bg / "x.svg").write_text("<svg/>")
    found = P.collect_photos(tmp_path)
    assert {k: (v[0].name, v[1]) for k, v in found.items()} == {
        "Foo_images": ("200x100.png", "Foo"), "Foo_images_dark": ("120x60.png", "Foo"),
        "gnome_grid_l": ("grid-l.webp", "grid"), "copy_grid_d": ("grid-d.webp", "grid"),
        "sway_Sway_Blue": ("Sway_Blue_2048x1536_Portrait.png", "Sway_Blue")}
    groups = {f"n{i}": f"g{i // 2}" for i in range(60)}  # 30 groups of 2
    split = P.photo_split(groups)
    assert split == P.photo_split(dict(reversed(list(groups.items()))))  # order-independent
    assert sum(v == "val" for v in split.values()) == 6
    assert all(split[f"n{2 * k}"] == split[f"n{2 * k + 1}"] for k in range(30))


def test_prepare_procedural_is_idempotent(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(P, "PROC_SIZE", (48, 32))
    monkeypatch.setattr(P, "PROC_FRAMES", 10)
    monkeypatch.setattr(P, "LAVFI_SOURCES", {"testsrc2": P.LAVFI_SOURCES["testsrc2"], "bogus": "nosuchfilter=x"})
    logs: list[str] = []
    e1 = P.prepare(tmp_path, sources=["procedural"], log=logs.append)
    names = sorted({e["name"] for e in e1})
    assert "testsrc2" in names and "bogus" not in names and any("bogus" in m for m in logs)
    assert all(e["shape"][1:] == [32, 48, 3] for e in e1)
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npy")}
    e2 = P.prepare(tmp_path, sources=["procedural"], log=logs.append)
    assert e2 == e1 and mtimes == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npy")}
    assert json.loads((tmp_path / "manifest.json").read_text())["version"] == 1
    assert P.main(["--out", str(tmp_path), "--sources", "procedural"]) == 0
    assert "procedural train" in capsys.readouterr().out


def test_cli_bad_source_is_one_line_error(tmp_path, capsys):
    assert P.main(["--out", str(tmp_path), "--sources", "audio"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "audio" in err and len(err.splitlines()) == 1
