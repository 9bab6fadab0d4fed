"""Encoder presets and rate control: every preset decodes with the one decoder, slower presets never cost more,
--bitrate lands on its target, argument errors."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import bitstream
from neuralcodec.cli import main
from neuralcodec.codec import Codec
from neuralcodec.coding import FrameCoder, build_tables
from neuralcodec.coding.presets import PRESETS, REFERENCE, quality_lambdas
from neuralcodec.model import TINY, VideoCodecModel
from neuralcodec.ratecontrol import parse_bitrate

from conftest import textured_clip

ORDER = ("fast", "medium", "slow", "veryslow")


@pytest.fixture(scope="module")
def rate_codec() -> Codec:
    """TINY with gains large enough that its rate grows with the quality (the random tiny model codes ~nothing)."""
    from neuralcodec.registry import round_like_saved
    from neuralcodec.training.export import motion_statistics
    torch.manual_seed(0)
    model = VideoCodecModel(TINY).eval()
    with torch.no_grad():
        gain = (torch.arange(4.0) + 7) * math.log(2)
        model.log_gain.copy_(gain.view(1, 4, 1).expand_as(model.log_gain))
        model.log_inv_gain.copy_(-model.log_gain)
    clip = torch.from_numpy(textured_clip(3, 32, 48, pan=2)).permute(0, 3, 1, 2).float()[None] / 255
    round_like_saved(model)
    build_tables(model, motion_statistics(model, clip))
    return Codec(model, "tiny-rate", "cd" * 32)


def frame_cost(packet, frame: np.ndarray, decoded: np.ndarray, lam: float) -> float:
    """The real RD cost the presets minimise: coded bits + lambda * 255^2 * SSE (images in [0, 1])."""
    sse = float(np.square(decoded.astype(np.float64) - frame).sum()) / 3
    return 8 * sum(len(c) for c in packet.chunks) + lam * sse


@pytest.mark.parametrize("preset", ORDER)
def test_every_preset_decodes_with_the_standard_decoder(rate_codec, preset):
    clip = textured_clip(4, 40, 56, pan=2, seed=1)
    coder = FrameCoder(rate_codec.model, 56, 40, gop=3, lambdas=rate_codec.lambdas)
    expected = [coder.encode(f, 2, PRESETS[preset])[1] for f in clip]
    data = rate_codec.encode(clip, quality=3, gop=3, preset=preset)
    np.testing.assert_array_equal(rate_codec.decode(data), np.stack(expected))


def test_slower_presets_never_cost_more(rate_codec):
    """From the same coder state (reference and previous latent), every frame, I and P, at every quality: each
    preset's real RD cost is at most that of every faster preset; also over an all-intra clip."""
    clip = textured_clip(4, 48, 64, pan=3, seed=2)
    for q in range(len(rate_codec.qualities)):
        lam = rate_codec.lambdas[q]
        state = FrameCoder(rate_codec.model, 64, 48, gop=100, lambdas=rate_codec.lambdas)
        for frame in clip:
            costs = []
            for name in ORDER:
                coder = copy.copy(state)
                packet, decoded = coder.encode(frame, q, PRESETS[name])
                costs.append(frame_cost(packet, frame, decoded, lam))
            assert all(a >= b for a, b in zip(costs, costs[1:])), (q, costs)
            state.encode(frame, q, PRESETS["medium"])
    intra = {name: 0.0 for name in ORDER}
    for name in ORDER:
        coder = FrameCoder(rate_codec.model, 64, 48, gop=1, lambdas=rate_codec.lambdas)
        for frame in clip:
            packet, decoded = coder.encode(frame, 3, PRESETS[name])
            intra[name] += frame_cost(packet, frame, decoded, rate_codec.lambdas[3])
    assert [intra[n] for n in ORDER] == sorted(intra.values(), reverse=True), intra


def test_reference_preset_is_the_model_forward(tiny_codec):
    """REFERENCE codes exactly model.encode_frame; medium searches on top of it and decodes the same way."""
    clip = textured_clip(3, 32, 48, pan=2, seed=3)
    a = tiny_codec.encode(clip, quality=2, preset=REFERENCE)
    out = tiny_codec.model(torch.from_numpy(clip).permute(0, 3, 1, 2).float()[None] / 255, torch.tensor([1]))
    from neuralcodec.model import to_levels
    fwd = (to_levels(out.recon[0]) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(tiny_codec.decode(a), fwd)


def test_quality_lambdas_match_training():
    from neuralcodec.training.train import TrainConfig, lambdas
    cfg = TrainConfig()
    np.testing.assert_allclose(quality_lambdas(None, cfg.model.num_qualities), lambdas(cfg).numpy(), rtol=1e-5)
    card = {"train_config": {"lambda_min": 0.001, "lambda_max": 0.1}}
    assert quality_lambdas(card, 3) == pytest.approx([0.001, 0.01, 0.1])


def test_bitrate_lands_on_target(rate_codec):
    """60 frames 48x64 at 25 fps (2.4 s): the file within 5 % of the target, the 1 s leaky bucket never over
    110 %, per-frame qualities in the packets."""
    clip = textured_clip(60, 48, 64, pan=1, seed=5)
    fps = 25
    low, high = (len(rate_codec.encode(clip, quality=q, fps=fps, preset="fast")) * 8 * fps / 60 for q in (1, 4))
    for target in (round(0.6 * low + 0.4 * high), round(0.3 * low + 0.7 * high)):
        data = rate_codec.encode(clip, fps=fps, preset="fast", bitrate=target)
        achieved = len(data) * 8 * fps / len(clip)
        assert abs(achieved / target - 1) <= 0.05, (target, achieved)
        _, packets = bitstream.unpack_stream(data)
        assert len({p.chunks[0][0] for p in packets}) > 1
        fullness, peak = 0.0, 0.0
        for p in packets:
            fullness = max(0.0, fullness + 8 * sum(map(len, p.chunks)) - target / fps)  # (framing: ~10 bytes)
            peak = max(peak, fullness)
        assert peak <= 1.1 * target, (peak, target)
        assert rate_codec.decode(data).shape == clip.shape


@pytest.mark.parametrize("text,value", [("300k", 300_000), ("1.5M", 1_500_000), ("2000000", 2_000_000),
                                        ("64K", 64_000), (" 2.5m ", 2_500_000), (48000, 48_000)])
def test_parse_bitrate(text, value):
    assert parse_bitrate(text) == value


@pytest.mark.parametrize("bad", ["", "k", "-300k", "300kb", "1e6", "abc", "0", "0.5", "nan", "1.5G"])
def test_parse_bitrate_rejects(bad):
    with pytest.raises(ValueError):
        parse_bitrate(bad)


def test_api_errors(tiny_codec):
    clip = textured_clip(2, 32, 48)
    with pytest.raises(ValueError, match="not both"):
        tiny_codec.encode(clip, quality=2, bitrate="300k")
    with pytest.raises(ValueError, match="preset"):
        tiny_codec.encode(clip, preset="placebo")
    with pytest.raises(ValueError, match="bitrate"):
        tiny_codec.encode(clip, bitrate="lots")


@pytest.fixture(scope="module")
def model_file(tiny_model, tmp_path_factory):
    from neuralcodec.registry import save_model
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(tiny_model, "tiny-test", path, card={"training": {"steps": 0}})
    return path


@pytest.fixture(scope="module")
def y4m_clip(tmp_path_factory):
    from fractions import Fraction
    from neuralcodec.io import open_writer
    path = tmp_path_factory.mktemp("clip") / "in.y4m"
    with open_writer(path, 48, 32, Fraction(25)) as writer:
        for frame in textured_clip(6, 32, 48, pan=1):
            writer.write(frame)
    return path


def test_cli_preset_and_bitrate(model_file, y4m_clip, tmp_path, capsys):
    from neuralcodec import load_codec
    codec = load_codec(model_file)
    for i, args in enumerate([["--preset", "fast"], ["--preset", "slow", "--gop", "3"], ["--bitrate", "40k"]]):
        out = tmp_path / f"o{i}.ncv"
        assert main(["encode", str(y4m_clip), "-o", str(out), "--model", str(model_file), "--quiet", *args]) == 0
        assert codec.decode(out.read_bytes()).shape == (6, 32, 48, 3)   # the one decoder (model not installed)
    capsys.readouterr()
    assert main(["info", str(tmp_path / "o2.ncv")]) == 0
    assert "quality" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--quality", "2", "--bitrate", "300k"], ["--bitrate", "fast"],
                                  ["--bitrate", "-1"], ["--preset", "placebo"]])
def test_cli_argument_errors(model_file, y4m_clip, tmp_path, capsys, args):
    with pytest.raises(SystemExit) as exc:
        main(["encode", str(y4m_clip), "-o", str(tmp_path / "x.ncv"), "--model", str(model_file), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.ncv").exists()
