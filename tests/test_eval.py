"""Tests for the eval/ rate-distortion suite: metrics on known cases, BD-rate, anchors, clip loading, quick CLI run."""
from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from eval import anchors, bdrate, clips, metrics, perceptual  # eval/ runs from the checkout (pytest pythonpath)
from eval.cli import main


def moving_pattern(t: int = 6, h: int = 64, w: int = 96) -> np.ndarray:
    """A smooth coloured pattern that moves by a few pixels per frame."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = []
    for i in range(t):
        r = 128 + 100 * np.sin((xx + 3 * i) / 9.0)
        g = 128 + 90 * np.cos((yy + 2 * i) / 7.0)
        b = 128 + 60 * np.sin((xx + yy + 4 * i) / 13.0)
        frames.append(np.stack([r, g, b], -1))
    return np.clip(np.rint(frames), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def png_clip(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clip")
    for i, f in enumerate(moving_pattern()):
        Image.fromarray(f).save(d / f"{i:03d}.png")
    return d


def noisy(ref: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(ref + rng.normal(0, sigma, ref.shape)), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- metrics

def test_identical_frames_psnr_inf_and_msssim_one():
    ref = moving_pattern(3)
    assert metrics.psnr_rgb(ref, ref) == math.inf
    assert all(v == math.inf for v in metrics.psnr_yuv(ref, ref).values())
    value, scales = metrics.msssim(ref, ref)
    assert value == pytest.approx(1.0, abs=1e-6)
    assert scales == 3  # 64 px side: 3 scales (10*2**2 < 64 <= 10*2**3)


def test_gaussian_noise_gives_expected_psnr():
    rng = np.random.default_rng(1)
    ref = rng.integers(60, 196, size=(6, 64, 96, 3), dtype=np.uint8)  # far from 0/255: no clipping at sigma 5
    sigma = 5.0
    dist = noisy(ref, sigma)
    mse = sigma ** 2 + 1 / 12  # rounding to integers adds uniform quantisation noise of variance 1/12
    assert metrics.psnr_rgb(ref, dist) == pytest.approx(10 * math.log10(255 ** 2 / mse), abs=0.1)
    # Y = 0.299R + 0.587G + 0.114B: noise variance scales by the sum of squared coefficients
    y_mse = (0.299 ** 2 + 0.587 ** 2 + 0.114 ** 2) * mse
    assert metrics.psnr_yuv(ref, dist)["psnr_y"] == pytest.approx(10 * math.log10(255 ** 2 / y_mse), abs=0.1)


def test_psnr_yuv_is_611_weighted():
    ref = moving_pattern(2)
    r = metrics.psnr_yuv(ref, noisy(ref, 4))
    assert r["psnr_yuv"] == pytest.approx((6 * r["psnr_y"] + r["psnr_u"] + r["psnr_v"]) / 8, abs=1e-9)


def test_msssim_matches_pytorch_msssim_at_five_scales_and_drops_with_noise():
    import pytorch_msssim
    import torch

    ref = moving_pattern(1, 176, 192)
    dist = noisy(ref, 12)
    value, scales = metrics.msssim(ref, dist)
    assert scales == 5
    lib = pytorch_msssim.ms_ssim(torch.from_numpy(ref).permute(0, 3, 1, 2).float(),
                                 torch.from_numpy(dist).permute(0, 3, 1, 2).float(), data_range=255)
    assert value == pytest.approx(float(lib), abs=1e-5)
    assert value < metrics.msssim(ref, noisy(ref, 3))[0] < 1.0


def test_msssim_scales_for_small_frames():
    assert metrics.msssim_scales(144, 176) == 4  # carphone (QCIF)
    assert metrics.msssim_scales(161, 500) == 5
    assert metrics.msssim_scales(12, 12) == 1
    with pytest.raises(ValueError, match="too small"):
        metrics.msssim_scales(10, 100)


def test_vmaf_and_cvvdp_rank_noise_levels():
    ref = moving_pattern(3)
    heavy = noisy(ref, 20)
    assert perceptual.vmaf(ref, ref) > 90 > perceptual.vmaf(ref, heavy)
    assert perceptual.cvvdp(ref, ref, Fraction(30)) == pytest.approx(10.0, abs=1e-3)
    assert perceptual.cvvdp(ref, heavy, Fraction(30)) < 9.5


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.psnr_rgb(moving_pattern(2), moving_pattern(3))
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.parse_metrics("psnr,bogus")


def test_rate():
    r = metrics.rate(1000, frames=10, width=100, height=50, fps=Fraction(25))
    assert r["bpp"] == pytest.approx(8000 / (10 * 100 * 50))
    assert r["kbps"] == pytest.approx(8000 / 0.4 / 1000)


# ---------------------------------------------------------------- BD-rate

RATES = [0.05, 0.1, 0.2, 0.4, 0.8]
QUALS = [30.0, 33.1, 35.9, 38.2, 40.0]


def test_bd_rate_against_itself_is_zero():
    r = bdrate.bd_rate(RATES, QUALS, RATES, QUALS)
    assert r["value"] == pytest.approx(0.0, abs=1e-6)
    assert r["overlap"] == pytest.approx(1.0)


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=0.2, max_value=5.0))
def test_bd_rate_of_scaled_rates(k):
    r = bdrate.bd_rate(RATES, QUALS, [x * k for x in RATES], QUALS)
    assert r["value"] == pytest.approx((k - 1) * 100, rel=1e-6, abs=1e-6)


def test_bd_rate_non_overlapping_and_degenerate_curves():
    r = bdrate.bd_rate(RATES, QUALS, RATES, [q + 20 for q in QUALS])
    assert r["value"] is None and "do not overlap" in r["reason"]
    r = bdrate.bd_rate(RATES, QUALS, RATES, [q + 9.5 for q in QUALS])  # overlap 0.5 dB of 19.5 dB
    assert r["value"] is None and "overlap by only" in r["reason"]
    r = bdrate.bd_rate(RATES, QUALS, [0.1, 0.2], [math.inf, 35.0])
    assert r["value"] is None and "fewer than 2" in r["reason"]
    # a non-monotonic point is dropped, not fatal
    r = bdrate.bd_rate(RATES, QUALS, RATES + [1.0], QUALS + [39.0])
    assert r["value"] == pytest.approx(0.0, abs=1e-6) and "dropped" in r["reason"]
    avg = bdrate.average({"a": {"value": -10.0}, "b": {"value": None}, "c": {"value": -20.0}})
    assert avg["value"] == pytest.approx(-15.0) and avg["n_clips"] == 2 and "b" in avg["reason"]


# ---------------------------------------------------------------- anchors and clips

def test_anchor_roundtrip_strips_info_sei_and_records_options():
    frames = moving_pattern(4)
    spec = anchors.ANCHORS["x264-lowdelay"]
    r = anchors.encode_decode(frames, spec, 30, Fraction(30), gop=4)
    assert r.decoded.shape == frames.shape and r.decoded.dtype == np.uint8
    assert r.info_sei_bytes > 0 and "keyint=4" in r.encoder_info and "bframes=0" in r.encoder_info
    assert r.options["crf"] == "30" and r.options["tune"] == "zerolatency"
    assert metrics.psnr_rgb(frames, r.decoded) > 25
    lower = anchors.encode_decode(frames, spec, 45, Fraction(30), gop=4)
    assert lower.nbytes < r.nbytes


def test_load_video_and_png_clips(tmp_path, png_clip):
    import av

    src = moving_pattern(5, 65, 97)  # odd size: cropped to even for 4:2:0 anchors
    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 97, 65, "bgr0"
        for f in src:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="bgr0")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    clip = clips.load_clip(path, max_frames=4)
    assert clip.frames.shape == (4, 64, 96, 3) and clip.fps == 25
    assert np.array_equal(clip.frames, src[:4, :64, :96]) and any("cropped" in n for n in clip.notes)
    small = clips.load_clip(png_clip, size=(48, 32))
    assert small.frames.shape == (6, 32, 48, 3) and small.fps == 30
    with pytest.raises(ValueError, match="not found"):
        clips.load_clip(tmp_path / "missing.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="cannot"):
        clips.load_clip(tmp_path / "bad.mp4")


def test_standard_clip_files_exist():
    specs = clips.standard_clip_specs()
    assert [s[0] for s in specs] == ["carphone", "bikes"]
    assert all(s[1].is_file() for s in specs)


# ---------------------------------------------------------------- CLI

def test_quick_mode_writes_json_plots_and_table(png_clip, tmp_path):
    out = tmp_path / "results"
    # 3 frames instead of quick mode's default 6 keep this test fast
    rc = main(["--clips", str(png_clip), "--out", str(out), "--quick", "--max-frames", "3", "--no-progress"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    codecs = res["settings"]["codecs"]
    assert set(codecs) == {"ncodec", "x264-lowdelay", "x264", "x265", "svtav1"}
    assert res["failures"] == []
    for codec in codecs:
        pts = [p for p in res["points"] if p["codec"] == codec]
        assert len(pts) == 3, codec
        assert all(p["bpp"] > 0 and math.isfinite(p["psnr_rgb"]) and 0 < p["msssim"] <= 1 for p in pts)
        assert "vmaf" not in pts[0]  # quick mode: fast metrics only
    assert res["codecs"]["x264-lowdelay"]["av"] and res["codecs"]["x264-lowdelay"]["av_library_versions"]
    bd = res["bd_rates"]["metrics"]["psnr_rgb"]
    assert bd["x264-lowdelay"]["per_clip"][png_clip.name]["value"] == pytest.approx(0.0, abs=1e-6)
    assert set(bd) == set(codecs)
    pngs = sorted(out.glob("rd_*.png"))
    assert len(pngs) == 3 and all(Image.open(p).size[0] > 100 for p in pngs)
    md = (out / "results.md").read_text()
    assert "BD-rate vs x264-lowdelay" in md and "| ncodec |" in md and "| svtav1 |" in md


def test_rate_controlled_points_for_ncodec_and_x264(png_clip, tmp_path):
    out = tmp_path / "abr"
    rc = main(["--clips", str(png_clip), "--out", str(out), "--quick", "--codecs", "ncodec-abr,x264-lowdelay",
               "--metrics", "psnr", "--no-progress"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["failures"] == []
    targets = {}
    for codec in ("ncodec-abr", "x264-lowdelay-abr"):
        pts = [p for p in res["points"] if p["codec"] == codec]
        targets[codec] = [p["value"] for p in pts]
        assert len(pts) == 2 and all(p["param"] == "bitrate" for p in pts)
        for p in pts:
            assert p["rate_error"] == pytest.approx(p["kbps"] * 1000 / p["value"] - 1)
    assert targets["ncodec-abr"] == targets["x264-lowdelay-abr"]   # the same targets for both
    assert "x264-lowdelay-abr" in res["bd_rates"]["metrics"]["psnr_rgb"]
    assert "## Rate control" in (out / "results.md").read_text()


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--clips", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: clip not found") and "\n" not in err
    assert main(["--clips", "standard", "--codecs", "x264,bogus", "--out", str(tmp_path / "o")]) == 2
    assert "unknown codec" in capsys.readouterr().err
    assert main(["--size", "12by4", "--out", str(tmp_path / "o")]) == 2
    assert "bad size" in capsys.readouterr().err
