"""Tests for the training pack (neuralcodec.training.pack) and PackDataset reading it."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import write_data_root

from neuralcodec.training import pack as K
from neuralcodec.training.data import PackDataset
from neuralcodec.training.data import prepare as P

CROP, CLIP = 32, 3


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """A tiny prepared root (the writers prepare.py uses) and its pack."""
    r = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:300, 0:400]
    photo = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1) + rng.integers(0, 24, (300, 400, 3))
    write_data_root(r, (96, 72), (64, 48), photo.clip(0, 255).astype(np.uint8), (300, 64),
                    rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), (90,))
    path = r / "t.ncpack"
    index = K.build_pack(r, path, log=lambda m: None)
    return r, path, index


def test_round_trip_is_lossless(packed):
    root, path, index = packed
    assert K.read_index(path)[0] == index and index["version"] == K.FORMAT_VERSION
    got = {(it["source"], it["split"], it["name"]): a for it, a in K.iter_pack(path)}
    assert len(got) == 6 and not list(root.glob(".*.tmp"))
    for e in P.load_manifest(root):
        if e["source"] == "photo" and e.get("scale") == 64:
            continue  # the pack keeps one version per photo: here the 300 px one
        assert np.array_equal(got[(e["source"], e["split"], e["name"])], np.load(root / e["path"]))
    assert {it["split"] for it, _ in K.iter_pack(path, "val")} == {"val"}


def test_size_limit_and_downscale(packed, tmp_path):
    root, _, _ = packed
    with pytest.raises(ValueError, match="max-mb"):
        K.build_pack(root, tmp_path / "x.ncpack", max_mb=0.001, log=lambda m: None)
    assert not (tmp_path / "x.ncpack").exists()
    full = packed[1].stat().st_size
    idx = K.build_pack(root, tmp_path / "y.ncpack", max_mb=(full - 1) / 1e6, log=lambda m: None)
    assert (tmp_path / "y.ncpack").stat().st_size < full and idx["plan"] != list(K.PLANS[0])
    photo = next(it for it in idx["items"] if it["name"] == "p_train")
    assert photo["shape"][1] < 300 and photo["downscale"] > 1


def test_cli_refuses_overwrite(packed, capsys):
    root, path, _ = packed
    assert K.main(["--data-root", str(root), "-o", str(path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--force" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("damage", ["magic", "version", "truncate", "flip"])
def test_corrupt_pack_is_a_value_error(packed, tmp_path, damage):
    data = bytearray(packed[1].read_bytes())
    if damage == "magic":
        data[:4] = b"JUNK"
    elif damage == "version":
        data[4] = K.FORMAT_VERSION + 1
    elif damage == "truncate":
        data = data[:-10]
    else:
        data[-100] ^= 0xFF  # inside the last frame: caught by the checksum
    bad = tmp_path / "bad.ncpack"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError):
        list(K.iter_pack(bad))
    if damage != "flip":  # a damaged frame of the train split is caught when PackDataset decodes it
        with pytest.raises(ValueError):
            PackDataset(bad, crop=CROP)


def test_sample_shape_range_determinism(packed):
    ds = PackDataset(packed[1], clip_len=CLIP, crop=CROP, noise_prob=0.5, blur_prob=0.5)
    x = ds.sample(12, torch.Generator().manual_seed(1))
    assert x.shape == (12, CLIP, 3, CROP, CROP) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and x.std() > 0.05
    assert torch.equal(x, ds.sample(12, torch.Generator().manual_seed(1)))
    assert not torch.equal(x, ds.sample(12, torch.Generator().manual_seed(2)))


@pytest.mark.parametrize("source", ["video", "photo", "procedural"])
def test_each_source(packed, source):
    ds = PackDataset(packed[1], clip_len=CLIP, crop=CROP, weights={source: 1.0})
    x = ds.sample(6, torch.Generator().manual_seed(0))
    assert x.shape == (6, CLIP, 3, CROP, CROP) and x.std() > 0.05


def test_integer_pan_of_a_photo_shifts_content(packed):
    ds = PackDataset(packed[1], clip_len=CLIP, crop=CROP, weights={"photo": 1.0})
    u = np.full(24, 0.5)
    u[8], u[9], u[10], u[11:13], u[13], u[14], u[15], u[17] = 0, 1, 0, 1, 0.75, 0.25, 1, 1  # pan (3, -3) px/frame
    x = ds._photos([u])[0]
    vx, vy, m = 3, -3, 5
    for t in range(CLIP - 1):
        a = x[t, :, m - vy:CROP - m - vy, m - vx:CROP - m - vx]
        b = x[t + 1, :, m:CROP - m, m:CROP - m]
        assert (a - b).abs().max() < 1e-3
    assert (x[1] - x[0]).abs().max() > 0.05


def test_static_photo_clips(packed):
    ds = PackDataset(packed[1], clip_len=CLIP, crop=CROP, weights={"photo": 1.0}, static_prob=1.0, noise_prob=0)
    x = ds.sample(8, torch.Generator().manual_seed(0))
    assert (x - x[:, :1]).abs().max() < 1e-5


def test_splits_are_separate(packed):
    tr = PackDataset(packed[1], "train", clip_len=2, crop=CROP)
    va = PackDataset(packed[1], "val", clip_len=2, crop=CROP)
    names = lambda d: {(s, n) for s, v in d.items.items() for n, _, _ in v}  # noqa: E731
    assert names(tr) == {("video", "vid"), ("procedural", "proc"), ("photo", "p_train")}
    assert names(va) == {("video", "vid"), ("procedural", "proc"), ("photo", "p_val")}
    assert tr.items["video"][0][1].shape[0] == 18 and va.items["video"][0][1].shape[0] == 2


def test_fixed_batch_is_stable(packed):
    va = PackDataset(packed[1], "val", clip_len=2, crop=CROP)
    a = va.fixed_batch(6, seed=7)
    va.sample(4)
    a.zero_()  # callers may modify what they get
    assert torch.equal(va.fixed_batch(6, seed=7), PackDataset(packed[1], "val", clip_len=2, crop=CROP).fixed_batch(6, 7))
    assert not torch.equal(va.fixed_batch(6, seed=7), va.fixed_batch(6, seed=8))


def test_bad_arguments(packed):
    with pytest.raises(ValueError):
        PackDataset(packed[1], split="test")
    with pytest.raises(ValueError):
        PackDataset(packed[1], weights={"audio": 1.0})
    with pytest.raises(ValueError), pytest.warns(UserWarning):
        PackDataset(packed[1], "val", clip_len=8, weights={"video": 1.0})  # the val video holds 2 frames


def test_items_smaller_than_the_crop_are_named_when_left_out(packed):
    """A crop larger than a clip leaves the clip out of training: the warning names it (a source that still has
    other items would otherwise vanish silently, as a validation clip's own source once did)."""
    _, path, _ = packed
    with pytest.warns(UserWarning, match=r"items smaller than the 80-pixel crop are left out: .*video/vid 96x72"):
        ds = PackDataset(path, "train", CLIP, 80)
    assert ds.sources == ["photo"] and ds.sample(1).shape == (1, CLIP, 3, 80, 80)
