"""Model invariants on a tiny configuration: forward == decode(encode), an exact integer parse, sizes, errors."""
from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import bitstream
from neuralcodec.codec import Codec, ModelError
from neuralcodec.coding import TablesNotExportedError
from neuralcodec.model import TINY, ModelConfig, VideoCodecModel, to_levels

from conftest import textured_clip


def _as_tensor(clip: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(clip).permute(0, 3, 1, 2).float()[None] / 255


def test_eval_forward_equals_decode_of_encode(tiny_codec):
    from neuralcodec.coding.presets import REFERENCE  # the encoder without presets' search: model.encode_frame
    clip = textured_clip(4, 32, 48, pan=2, seed=3)
    for q in tiny_codec.qualities:
        decoded = tiny_codec.decode(tiny_codec.encode(clip, quality=q, gop=100, preset=REFERENCE))
        out = tiny_codec.model(_as_tensor(clip), torch.tensor([q - 1]))
        fwd = (to_levels(out.recon[0]) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        np.testing.assert_array_equal(fwd, decoded)


def test_estimated_rate_matches_coded_size(tiny_codec):
    """The rate the loss sees is what the coder writes (tables are the same distributions, 16-bit quantized)."""
    clip = textured_clip(3, 96, 128, pan=2, seed=4)
    q = len(tiny_codec.qualities)
    data = tiny_codec.encode(clip, quality=q, gop=100)
    _, packets = bitstream.unpack_stream(data)
    coded = sum(len(p.chunks[2]) + len(p.chunks[3]) for p in packets)
    out = tiny_codec.model(_as_tensor(clip), torch.tensor([q - 1]))
    est = float((out.bits_y + out.bits_z).sum()) / 8
    assert est > 100
    # rANS flushes 4-8 bytes per chunk and writes its word count: allow that plus 3 %
    assert abs(coded - est) <= 0.03 * est + 12 * len(packets), (coded, est)


def test_encoding_is_deterministic(tiny_codec):
    clip = textured_clip(4, 32, 48, pan=1, seed=8)
    assert tiny_codec.encode(clip, quality=2) == tiny_codec.encode(clip, quality=2)


@pytest.mark.parametrize("h,w", [(17, 33), (33, 17), (1, 1), (8, 8), (23, 40), (70, 90)])
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
    assert all(len(p.chunks) == 4 and p.chunks[0] == b"\x00" for p in packets)


def test_per_frame_quality_is_in_the_packet(tiny_codec):
    clip = textured_clip(3, 32, 32, pan=1)
    buf = io.BytesIO()
    enc = tiny_codec.stream_encoder(buf, 32, 32, quality=2, gop=10)
    for frame, q in zip(clip, (1, 4, 3)):
        enc.write(frame, quality=q)
    enc.close()
    _, packets = bitstream.unpack_stream(buf.getvalue())
    assert [p.chunks[0][0] for p in packets] == [0, 3, 2]
    assert tiny_codec.decode(buf.getvalue()).shape == clip.shape


def test_integer_network_is_exact_whatever_the_layout(tiny_model):
    """Scale indexes and means do not depend on batch composition, memory layout or thread count."""
    torch.manual_seed(0)
    c = TINY
    z = torch.randint(-c.z_max, c.z_max + 1, (2, c.hyper_dim, 3, 4))
    prev = torch.randint(-200, 200, (2, c.latent_dim, 12, 16)).float() / c.mean_steps
    q = torch.tensor([0, 3])
    ref = tiny_model.frame_params(False, z, q, (10, 13), prev)
    single = tiny_model.frame_params(False, z[1:], q[1:], (10, 13), prev[1:])
    assert torch.equal(ref.scale_index[1:], single.scale_index) and torch.equal(ref.mean[1:], single.mean)
    cl = tiny_model.frame_params(False, z.contiguous(memory_format=torch.channels_last), q, (10, 13),
                                 prev.contiguous(memory_format=torch.channels_last))
    assert torch.equal(ref.scale_index, cl.scale_index) and torch.equal(ref.mean, cl.mean)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = tiny_model.frame_params(False, z, q, (10, 13), prev)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(ref.scale_index, one.scale_index) and torch.equal(ref.mean, one.mean)
    assert ref.scale_index.min() >= 0 and ref.scale_index.max() < c.scale_levels
    assert torch.equal(ref.mean * c.mean_steps, (ref.mean * c.mean_steps).round())


def test_training_path_matches_exact_path(tiny_model):
    """The straight-through float path the loss uses computes the integer network's values."""
    c = TINY
    torch.manual_seed(1)
    z = torch.randint(-8, 9, (1, c.hyper_dim, 2, 3))
    q = torch.tensor([2])
    exact = tiny_model.frame_params(True, z, q, (8, 12), None)
    s, mu = tiny_model.i_hyper_s(z.float(), q, (8, 12))
    agree = (s.long() == exact.scale_index).float().mean()
    assert agree > 0.99 and float((mu - exact.mean).abs().max()) <= 1 / c.mean_steps


def test_decode_identical_in_fresh_process_and_threads(tiny_model, tmp_path):
    from neuralcodec.registry import save_model
    path = tmp_path / "tiny.safetensors"
    save_model(tiny_model, "tiny-test", path, card={"training": {"steps": 0}})
    from neuralcodec import load_codec
    codec = load_codec(path)
    clip = textured_clip(4, 24, 40, pan=1, seed=2)
    data = codec.encode(clip, quality=2)
    (tmp_path / "x.ncv").write_bytes(data)
    mine = codec.decode(data)
    script = ("import sys, numpy as np, torch; from neuralcodec import load_codec; "
              "torch.set_num_threads(int(sys.argv[4])); c = load_codec(sys.argv[1]); "
              "np.save(sys.argv[3], c.decode(open(sys.argv[2], 'rb').read()))")
    for threads in (1, 2):
        out = tmp_path / f"y{threads}.npy"
        subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "x.ncv"), str(out), str(threads)],
                       check=True)
        np.testing.assert_array_equal(np.load(out), mine)


def test_decode_with_and_without_channels_last(tiny_model):
    codec = Codec(tiny_model, "tiny-test", "ab" * 32)
    clip = textured_clip(3, 32, 48, pan=1, seed=6)
    data = codec.encode(clip, quality=3)
    a = codec.decode(data)
    plain = Codec(tiny_model, "tiny-test", "ab" * 32)
    plain.model.to(memory_format=torch.contiguous_format)
    b = plain.decode(data)
    codec.model.to(memory_format=torch.channels_last)
    # the parse is integer-exact; the float synthesis may differ by a rounding between layouts
    assert np.abs(a.astype(int) - b).max() <= 1


def test_corrupt_side_information_raises_bitstream_error(tiny_codec):
    clip = textured_clip(3, 32, 48, pan=2, seed=9)
    header, packets = bitstream.unpack_stream(tiny_codec.encode(clip, quality=2, gop=10))
    rng = np.random.default_rng(0)
    for trial in range(60):
        k = trial % 4
        bad = []
        for p in packets:
            chunks = list(p.chunks)
            c = bytearray(chunks[k])
            if k == 0:
                c = bytearray([int(rng.integers(0, 256))])
            elif c and trial % 3:
                c[int(rng.integers(len(c)))] ^= 1 << int(rng.integers(8))
            else:
                c = bytearray(rng.integers(0, 256, int(rng.integers(0, 40))).astype(np.uint8).tobytes())
            chunks[k] = bytes(c)
            bad.append(bitstream.Packet(p.frame_type, tuple(chunks)))
        data = bitstream.pack_stream(header, bad)
        try:
            out = tiny_codec.decode(data)
        except bitstream.BitstreamError:
            continue
        assert out.shape == clip.shape


def test_wrong_chunk_count_and_p_without_i(tiny_codec):
    clip = textured_clip(2, 32, 32)
    header, packets = bitstream.unpack_stream(tiny_codec.encode(clip, gop=10))
    with pytest.raises(bitstream.BitstreamError):
        tiny_codec.decode(bitstream.pack_stream(header, [bitstream.Packet(0, packets[0].chunks[:3])]))
    with pytest.raises(bitstream.BitstreamError):
        tiny_codec.decode(bitstream.pack_stream(header, packets[1:]))


def test_coding_without_tables_raises():
    codec = Codec(VideoCodecModel(TINY), "x", "00" * 32)
    with pytest.raises(TablesNotExportedError):
        codec.encode(textured_clip(1, 16, 16))


def test_bad_arguments(tiny_codec):
    clip = textured_clip(2, 16, 16)
    with pytest.raises(ValueError):
        tiny_codec.encode(clip, quality=0)
    with pytest.raises(ValueError):
        tiny_codec.encode(clip, quality=len(tiny_codec.qualities) + 1)
    with pytest.raises(ValueError):
        tiny_codec.encode(clip, gop=0)
    with pytest.raises(ValueError):
        tiny_codec.encode([])
    with pytest.raises(ModelError):
        Codec(tiny_codec.model, "other", "cd" * 32).decode(tiny_codec.encode(clip))


@pytest.mark.parametrize("change", [
    {"channels": [200000, 8, 12, 16]}, {"latent_dim": 0}, {"stride": 0}, {"scale_min": float("nan")},
    {"act_max": 10 ** 9}, {"channels": "wide"}, {"bogus": 1},
])
def test_hostile_model_config_is_refused(tiny_model, tmp_path, change):
    from safetensors.torch import save_file
    from neuralcodec.registry import FORMAT, read_model
    cfg = json.loads(TINY.to_json())
    cfg.update(change)
    path = tmp_path / "bad.safetensors"
    save_file({"cdf": tiny_model.cdf}, str(path), metadata={"format": FORMAT, "name": "bad",
                                                         "config": json.dumps(cfg), "card": "{}"})
    with pytest.raises(ModelError, match="bad.safetensors"):
        read_model(path)


def test_model_file_missing_fields_and_garbage(tiny_model, tmp_path):
    from safetensors.torch import save_file
    from neuralcodec.registry import FORMAT, read_model
    cfg = json.loads(TINY.to_json())
    del cfg["latent_dim"]
    path = tmp_path / "m.safetensors"
    save_file({"cdf": tiny_model.cdf}, str(path), metadata={"format": FORMAT, "name": "m",
                                                         "config": json.dumps(cfg), "card": "{}"})
    with pytest.raises(ModelError, match="missing"):
        read_model(path)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(ModelError, match="m.safetensors"):
        read_model(path)


def test_config_round_trip_and_align():
    cfg = ModelConfig()
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    assert cfg.align == 16


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


def test_motion_residual_round_trip():
    from neuralcodec.model.motion import mv_to_residual, residual_to_mv
    mv = np.random.default_rng(0).integers(-64, 64, (2, 5, 7))
    np.testing.assert_array_equal(residual_to_mv(mv_to_residual(mv)), mv)
    pan = np.full((2, 5, 7), 8)
    assert np.count_nonzero(mv_to_residual(pan)) == 2      # a uniform pan costs one vector
