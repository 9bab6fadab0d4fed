"""Model invariants on a tiny configuration: rates, determinism, sizes, motion, model files, errors (forward ==
decode(encode) and the entropy model's invariants: test_learned_rate.py)."""
from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch

import bitstream
from neuralcodec.codec import Codec, FrameCoder, ModelError
from neuralcodec.coding import EntropyCoder, TablesNotExportedError, freeze_tables
from neuralcodec.coding.entropy import mv_table_count
from neuralcodec.model import TINY, LearnedRateModel

from conftest import textured_clip


def test_rate_rises_with_the_quality(tiny_codec):
    clip = textured_clip(3, 48, 64, pan=1, seed=5)
    sizes = [len(tiny_codec.encode(clip, quality=q)) for q in tiny_codec.qualities]
    assert all(a < b for a, b in zip(sizes, sizes[1:])), sizes


def test_encoding_is_deterministic(tiny_codec):
    clip = textured_clip(4, 32, 48, pan=1, seed=8)
    assert tiny_codec.encode(clip, quality=2) == tiny_codec.encode(clip, quality=2)


@pytest.mark.parametrize("h,w", [(17, 33), (33, 17), (1, 1), (8, 8), (23, 40)])
def test_odd_sizes_round_trip(tiny_codec, h, w):
    clip = textured_clip(3, max(h, 16), max(w, 16), seed=1)[:, :h, :w]
    out = tiny_codec.decode(tiny_codec.encode(clip, gop=2))
    assert out.shape == clip.shape and out.dtype == np.uint8


def test_iterable_input_and_header(tiny_codec):
    clip = textured_clip(3, 16, 24)
    data = tiny_codec.encode(iter(list(clip)), quality=1, gop=2)
    header, packets = bitstream.unpack_stream(data)
    assert (header.width, header.height, header.quality, header.gop) == (24, 16, 1, 2)
    assert [p.frame_type for p in packets] == [bitstream.FrameType.I, bitstream.FrameType.P, bitstream.FrameType.I]
    assert header.model_name == "tiny-test"


def test_fresh_process_decodes_identically(tiny_model, tiny_codec, tmp_path):
    from neuralcodec.registry import save_model
    path = tmp_path / "tiny.safetensors"
    save_model(tiny_model, "tiny-test", path, half=False)
    from neuralcodec import load_codec
    codec = load_codec(path)
    assert codec.levels == tiny_codec.levels
    clip = textured_clip(4, 24, 40, pan=1, seed=2)
    data = codec.encode(clip, quality=2)
    (tmp_path / "x.ncv").write_bytes(data)
    mine = codec.decode(data)
    script = ("import sys, numpy as np; from neuralcodec import load_codec; "
              "c = load_codec(sys.argv[1]); np.save(sys.argv[3], c.decode(open(sys.argv[2], 'rb').read()))")
    subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "x.ncv"), str(tmp_path / "y.npy")],
                   check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), mine)


def test_coding_before_export_raises():
    codec = Codec(LearnedRateModel(TINY), "raw", "00" * 32)
    with pytest.raises(TablesNotExportedError):
        codec.encode(textured_clip(1, 16, 16))


def test_bad_arguments(tiny_codec):
    clip = textured_clip(2, 16, 16)
    with pytest.raises(ValueError):
        tiny_codec.encode(clip, quality=0)
    with pytest.raises(ValueError):
        tiny_codec.encode(clip, gop=0)
    with pytest.raises(ValueError):
        tiny_codec.encode(np.zeros((2, 16, 16), np.uint8))
    with pytest.raises(ValueError):
        tiny_codec.encode([])


def test_model_mismatch_and_corrupt_data(tiny_model, tiny_codec):
    data = tiny_codec.encode(textured_clip(3, 16, 24), quality=2)
    other = Codec(tiny_model, "tiny-test", "cd" * 32)
    with pytest.raises(ModelError):
        other.decode(data)
    with pytest.raises(bitstream.BitstreamError):
        tiny_codec.decode(data[:-5])
    with pytest.raises(bitstream.BitstreamError):
        tiny_codec.decode(b"not a stream at all")


def test_stream_api_matches_bytes_api(tiny_codec):
    clip = textured_clip(3, 16, 24, pan=1)
    buf = io.BytesIO()
    enc = tiny_codec.stream_encoder(buf, 24, 16, quality=2, gop=8)
    sizes = [enc.write(f) for f in clip]
    enc.close()
    assert sum(sizes) < len(buf.getvalue())
    dec = tiny_codec.stream_decoder(io.BytesIO(buf.getvalue()))
    assert dec.header.frame_count == 3
    np.testing.assert_array_equal(np.stack(list(dec)), tiny_codec.decode(tiny_codec.encode(clip, quality=2, gop=8)))


@pytest.mark.parametrize("shift", [(0, 0), (2, 0), (-3, 5), (0.5, 0.25), (-1.75, 1.5)])
def test_motion_search_recovers_global_shift(shift):
    from neuralcodec.model.motion import block_warp, estimate_motion
    torch.manual_seed(0)
    big = torch.nn.functional.interpolate(torch.rand(1, 3, 30, 40), scale_factor=4, mode="bicubic").clamp(0, 1)
    ref = big[..., 8:8 + 96, 8:8 + 128]
    true = torch.zeros(1, 2, 6, 8, dtype=torch.long)
    true[:, 0], true[:, 1] = int(shift[0] * 4), int(shift[1] * 4)
    cur = block_warp(ref, true, 16)
    mv = estimate_motion(cur, ref)
    inner = mv[:, :, 1:-1, 1:-1]
    assert (inner == true[:, :, 1:-1, 1:-1]).all(dim=1).float().mean() > 0.9


@pytest.mark.parametrize("coding", [0, 1])
@pytest.mark.parametrize("tol", [0.005, 0.02])
def test_motion_merge_trades_bounded_prediction_error_for_zero_residuals(tol, coding):
    """Blocks take the vector they are coded against (their prediction under the motion coding) only within
    tol of their own prediction error, and the merged field has fewer non-zero residual symbols (a field whose
    vectors jitter by a quarter pel around a few true motions)."""
    from neuralcodec.model.motion import _blocks_sad, _prefer_median, _prefer_neighbours, block_warp, luma, \
        mv_to_residual
    torch.manual_seed(1)
    ref = torch.nn.functional.interpolate(torch.rand(1, 3, 12, 16), scale_factor=8, mode="bicubic").clamp(0, 1)
    true = torch.randint(-12, 12, (1, 2, 3, 4)).repeat_interleave(2, 2).repeat_interleave(2, 3)   # 2x2 groups
    cur = (block_warp(ref, true, 16) + 0.02 * torch.randn_like(ref)).clamp(0, 1)
    field = true + torch.randint(-1, 2, true.shape)
    cy, ry = luma(cur), luma(ref)
    merged = (_prefer_median if coding else _prefer_neighbours)(cy, ry, 16, field, tol)
    ii, jj = (a.ravel() for a in torch.meshgrid(torch.arange(6), torch.arange(8), indexing="ij"))
    own = torch.nn.functional.avg_pool2d((cy - block_warp(ry, field, 16)).abs(), 16)[0, 0].ravel()
    assert (_blocks_sad(cy, ry, 16, ii, jj, field.flatten(2))[0] - own).abs().max() < 1e-6
    assert (_blocks_sad(cy, ry, 16, ii, jj, merged.flatten(2))[0] <= own + tol + 1e-6).all()
    nz = [np.count_nonzero(mv_to_residual(m[0].numpy(), coding)) for m in (field, merged)]
    assert nz[1] < nz[0], nz


@pytest.mark.parametrize("coding", [0, 1])
@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (5, 1), (5, 7), (17, 40)])
def test_motion_residual_round_trip(coding, shape):
    from neuralcodec.model.motion import mv_to_residual, residual_to_mv
    mv = np.random.default_rng(0).integers(-64, 64, (2,) + shape)
    np.testing.assert_array_equal(residual_to_mv(mv_to_residual(mv, coding), coding), mv)
    pan = np.full((2,) + shape, 8)
    assert np.count_nonzero(mv_to_residual(pan, coding)) == 2      # a uniform pan costs one vector


def test_median_prediction_of_a_field():
    """MV_MEDIAN predicts from left, up and up-right (last column: up-left), the first row from the left, the
    first column from above."""
    from neuralcodec.model.motion import mv_to_residual
    mv = np.zeros((2, 3, 3), dtype=np.int64)
    mv[0] = [[4, 8, 1], [2, 7, 5], [9, 3, 6]]
    res = mv_to_residual(mv, 1)[0]
    pred = mv[0] - res
    assert pred[0].tolist() == [0, 4, 8]                            # first row: the left neighbour
    assert pred[1:, 0].tolist() == [4, 2]                           # first column: the block above
    assert pred[1, 1] == sorted([2, 8, 1])[1]             # median(left 2, up 8, up-right 1)
    assert pred[1, 2] == sorted([7, 1, 8])[1]                       # last column: median(left, up, up-left)
    assert pred[2, 1] == sorted([9, 7, 5])[1]


@pytest.mark.parametrize("coding", [0, 1])
def test_motion_chunk_round_trip_and_corruption(coding):
    """Both motion codings code and decode fields exactly (zero, uniform, smooth, noisy, beyond the alphabet),
    and a corrupt field chunk decodes to clamped vectors or raises BitstreamError, nothing else."""
    from dataclasses import replace
    cfg = replace(TINY, mv_coding=coding)
    rng = np.random.default_rng(coding)
    model = LearnedRateModel(cfg)
    pmf = np.exp(-np.abs(np.arange(cfg.mv_alphabet) - cfg.mv_alphabet // 2) / 3)
    model.entropy.cdf = freeze_tables(model, [bitstream.CdfTables.from_pmfs([pmf])[0]] * mv_table_count(coding))
    ent = EntropyCoder(model)
    smooth = np.cumsum(rng.integers(-1, 2, (2, 4, 6)), axis=2) * 4
    fields = [np.zeros((2, 4, 6), np.int64), np.full((2, 4, 6), -7), smooth,
              rng.integers(-20, 20, (2, 4, 6)), rng.integers(-300, 300, (2, 4, 6))]
    for mv in fields:
        data = ent.encode_motion(mv)
        np.testing.assert_array_equal(ent.decode_motion(data, (4, 6), 10 ** 6), mv)
    data = ent.encode_motion(fields[3])
    for i in range(1, len(data)):
        for bad in (data[:i], data[:i] + bytes([data[i] ^ 0x5A]) + data[i + 1:]):
            try:
                out = ent.decode_motion(bad, (4, 6), 100)
            except bitstream.BitstreamError:
                continue
            assert out.shape == (2, 4, 6) and np.abs(out).max() <= 100


def test_missing_mv_coding_means_the_left_predictor_and_table_count_is_checked(tiny_model, tmp_path):
    """A model file written before ModelConfig.mv_coding existed reads as mv_coding 0; a file whose tables do
    not match its config is refused."""
    import json
    from safetensors.torch import save_file
    from neuralcodec.model.config import ModelConfig
    from neuralcodec.registry import FORMAT, read_model
    raw = json.loads(TINY.to_json())
    assert raw.pop("mv_coding") == 1
    assert ModelConfig.from_json(json.dumps(raw)).mv_coding == 0
    with pytest.raises(ValueError, match="mv_coding"):
        ModelConfig.from_json(json.dumps({**raw, "mv_coding": 2}))
    state = {k: v.contiguous() for k, v in tiny_model.state_dict().items()}
    path = tmp_path / "old.safetensors"
    save_file(state, str(path), metadata={"format": FORMAT, "name": "old", "config": json.dumps(raw)})
    with pytest.raises(ModelError, match="entropy tables"):       # 3 motion tables, a left-predictor model has 2
        read_model(path)


@pytest.mark.parametrize("change", [
    {"channels": [200000, 12, 16]}, {"latent_dim": 0}, {"stride": 0}, {"qualities": 10 ** 6},
    {"channels": "wide"}, {"hyper_dim": 1.5}, {"rate_model": 2}, {"bogus": 1},
])
def test_hostile_model_config_is_refused(tiny_model, tmp_path, change):
    import json
    from safetensors.torch import save_file
    from neuralcodec.registry import FORMAT, read_model
    cfg = json.loads(TINY.to_json())
    cfg.update(change)
    path = tmp_path / "bad.safetensors"
    save_file({"entropy.cdf": tiny_model.entropy.cdf}, str(path),
              metadata={"format": FORMAT, "name": "bad", "config": json.dumps(cfg)})
    with pytest.raises(ModelError, match="bad.safetensors"):
        read_model(path)


def test_model_file_missing_fields_shapes_and_garbage(tiny_model, tmp_path):
    import json
    from safetensors.torch import save_file
    from neuralcodec.registry import FORMAT, read_model
    cfg = json.loads(TINY.to_json())
    del cfg["latent_dim"]
    path = tmp_path / "m.safetensors"
    save_file({"entropy.cdf": tiny_model.entropy.cdf}, str(path),
              metadata={"format": FORMAT, "name": "m", "config": json.dumps(cfg)})
    with pytest.raises(ModelError, match="missing"):
        read_model(path)
    save_file({"entropy.cdf": tiny_model.entropy.cdf}, str(path), metadata={"format": FORMAT, "name": "m"})
    with pytest.raises(ModelError, match="config"):
        read_model(path)
    state = {k: v.contiguous() for k, v in tiny_model.state_dict().items()}
    state["i_dec.inp.weight"] = torch.zeros(3, 3, 3, 3)
    save_file(state, str(path), metadata={"format": FORMAT, "name": "m", "config": TINY.to_json()})
    with pytest.raises(ModelError, match="shape"):
        read_model(path)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(ModelError, match="m.safetensors"):
        read_model(path)


def test_model_card_round_trip_and_hostile_cards(tiny_model, tmp_path):
    import json
    from safetensors.torch import save_file
    from neuralcodec.registry import FORMAT, load_codec, read_model, save_model
    record = {"version": "0.1", "steps": 120, "cpu_hours": 0.5, "gpu_hours": 0.0, "commands": ["train --steps 120"]}
    path = tmp_path / "c.safetensors"
    save_model(tiny_model, "tiny-test", path, half=False, card=record)
    card = load_codec(path).card
    assert card["version"] == "0.1" and card["training"] == {k: record[k] for k in card["training"]}
    assert card["parameters"] == sum(p.numel() for p in tiny_model.parameters())
    kmac = card["decoder_kmac_per_pixel"]
    assert 0 < kmac["I"] < kmac["P"] < 26   # the context network makes P-frames dearer; both in the budget
    state = {k: v.contiguous() for k, v in tiny_model.state_dict().items()}
    for bad in ('{"version": 3}', '{"steps": "many"}', '{"commands": [1]}', '{"owner": "x"}', '[1]', "{",
                json.dumps({"commands": ["x" * 70000]})):
        save_file(state, str(path), metadata={"format": FORMAT, "name": "m", "config": TINY.to_json(), "card": bad})
        with pytest.raises(ModelError, match="c.safetensors"):
            read_model(path)


def test_scene_cut_rule(tiny_codec):
    coder = FrameCoder(tiny_codec, 48, 32, tiny_codec.levels[1], gop=8, scenecut=6.0)
    assert not coder.scene_cut(0.5)                          # no P-frame yet: nothing to compare with
    coder.pred_mse = 1e-3                                     # the last P-frame's prediction: 30 dB
    assert not coder.scene_cut(3.9e-3) and coder.scene_cut(4.1e-3)   # 5.9 dB worse: no; 6.1 dB: yes
    coder.pred_mse = 1e-5                                     # 50 dB: a prediction still above 30 dB is no cut
    assert not coder.scene_cut(9e-4) and coder.scene_cut(1.1e-3)
    coder.scenecut = 0.0
    assert not coder.scene_cut(1.0)
    for bad in (-1, 101, float("nan"), True, "6"):
        with pytest.raises(ValueError):
            tiny_codec.encode(textured_clip(2, 16, 16), scenecut=bad)


def test_model_package_knows_no_bytes():
    """neuralcodec.model is pure torch: importing it loads no part of bitstream, and in the product code only the
    coding layer imports the rANS functions."""
    import pathlib
    import re
    out = subprocess.run([sys.executable, "-c", "import sys, neuralcodec.model; "
                          "print(sorted(m for m in sys.modules if m.split('.')[0] == 'bitstream'))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
    root = pathlib.Path(__file__).resolve().parents[1] / "neuralcodec"
    rans = re.compile(r"\b(encode_symbols|decode_symbols|CdfTables)\b")
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if rans.search(p.read_text()))
    assert users == ["coding/entropy.py"]
