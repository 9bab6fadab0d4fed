"""Model v2 (learned rate) with a tiny model: the integer-exact entropy model, the coding layer, format version 3."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bitstream import BitstreamError, FrameType, Packet, StreamHeader
from neuralcodec.codec import Codec
from neuralcodec.coding import EntropyCoder, FrameCoder
from neuralcodec.model import TINY, LearnedRateModel, to_levels
from neuralcodec.model.hyperprior import SCALE_LEVELS
from neuralcodec.registry import read_model, save_model
from tests.conftest import make_tiny_model, textured_clip


@pytest.fixture(scope="module")
def v2_codec(one_thread) -> Codec:
    return Codec(make_tiny_model(), "tiny-v2", "cd" * 32)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return textured_clip(4, 40, 72, pan=2, seed=3)     # padded to 64 x 96 (the v2 alignment is 32)


def test_eval_forward_equals_decode_of_encode(v2_codec):
    """The training graph in eval mode reconstructs exactly what the decoder outputs, at every quality."""
    frames = textured_clip(3, 64, 64, pan=2, seed=5)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()[None] / 255
    for q in v2_codec.qualities:
        with torch.no_grad():
            recon, bits = v2_codec.model(x, torch.tensor([q - 1]))
        want = (to_levels(recon[0]) * 255).round().byte().permute(0, 2, 3, 1).numpy()
        data = v2_codec.encode(frames, quality=q, scenecut=0)
        assert np.array_equal(v2_codec.decode(data), want), q


def test_round_trip_every_quality_and_rate_control(v2_codec, clip):
    sizes = []
    for q in v2_codec.qualities:
        data = v2_codec.encode(clip, quality=q)
        assert data[4] == 3                                   # format version 3
        out = v2_codec.decode(data)
        assert out.shape == clip.shape and out.dtype == np.uint8
        sizes.append(len(data))
    data = v2_codec.encode(clip, bitrate=8 * sizes[1] * 30 / len(clip))
    assert v2_codec.decode(data).shape == clip.shape


def test_hyper_coder_round_trips_with_escapes(v2_codec):
    """z and y in one rANS stream, y's tables chosen from the decoded z; escapes in both parts."""
    ent: EntropyCoder = v2_codec.entropy
    rng = np.random.default_rng(0)
    z = rng.integers(-3, 4, (TINY.hyper_dim, 2, 3))
    z[0, 0, 0], z[1, 1, 2] = 9999, -4000
    y = rng.integers(-5, 6, (4, 8, 12))
    y[0, 0, 0], y[1, 2, 3] = 100000, -70000                  # far outside every table: escapes

    def index(z_: np.ndarray) -> np.ndarray:                 # any deterministic function of z
        return (np.abs(z_).sum() * 7 + np.arange(y.size)).reshape(y.shape) % SCALE_LEVELS
    for intra in (True, False):
        data = ent.encode_latents(z, y, index(z), intra)
        z2, y2 = ent.decode_latents(data, intra, z.shape, y.shape, index)
        assert np.array_equal(z2, z) and np.array_equal(y2, y)
        with pytest.raises(BitstreamError):
            ent.decode_latents(data + b"\x00", intra, z.shape, y.shape, index)


def test_estimated_rate_matches_the_coded_size(v2_codec):
    """The rate the training loss sees is the rate the coder spends (tiny model; a trained one is checked in
    test_shipped_model's rate test when the default model is a learned-rate one)."""
    frames = textured_clip(1, 64, 64, seed=7)
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()[None] / 255
    q = v2_codec.qualities[-1]
    with torch.no_grad():
        _, bits = v2_codec.model(x, torch.tensor([q - 1]))
    data = v2_codec.encode(frames, quality=q)
    coded = 8 * (len(data) - 43 - len(v2_codec.name) - 7 - 8)    # payload: no stream header, packet head
    # the z + y chunk adds a constant: its word count (1 byte), the flushed 64-bit rANS state and up to one partly
    # filled 32-bit word
    assert -0.03 * float(bits) <= coded - float(bits) <= 0.03 * float(bits) + 8 + 64 + 32, (coded, float(bits))


_DECODE = """
import hashlib, sys, torch
torch.set_num_threads(int(sys.argv[2]))
from neuralcodec import load_codec
from neuralcodec.coding import FrameCoder
codec = load_codec(sys.argv[1])
if sys.argv[3] == "contiguous":
    codec.model.to(memory_format=torch.contiguous_format)
h = hashlib.sha256()
orig = FrameCoder._index
def spy(self, ftype, z):
    idx = orig(self, ftype, z)
    h.update(idx.numpy().tobytes())
    return idx
FrameCoder._index = spy
frames = codec.decode(open(sys.argv[4], "rb").read())
print(h.hexdigest(), hashlib.sha256(frames.tobytes()).hexdigest())
"""


def test_decode_is_identical_across_threads_processes_and_memory_formats(v2_codec, clip, tmp_path):
    """The scale indexes (the parse) and the decoded frames are the same with 1 and 2 threads, in fresh
    processes, with channels_last on and off."""
    path = tmp_path / "tiny-v2.safetensors"
    save_model(v2_codec.model, "tiny-v2", path, card={"version": "t"})
    from neuralcodec import load_codec
    codec = load_codec(path)
    stream = tmp_path / "c.ncv"
    stream.write_bytes(codec.encode(clip, quality=2))
    runs = {subprocess.run([sys.executable, "-c", _DECODE, str(path), threads, fmt, str(stream)],
                           capture_output=True, text=True, check=True).stdout.split()[0]
            for threads in ("1", "2") for fmt in ("channels_last", "contiguous")}
    assert len(runs) == 1


def test_model_file_round_trip(v2_codec, tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(v2_codec.model, "tiny-v2", path, card={"version": "2.t", "steps": 5})
    model, name, card = read_model(path)
    assert isinstance(model, LearnedRateModel) and name == "tiny-v2"
    assert card["version"] == "2.t" and card["steps"] == 5
    assert torch.equal(model.entropy.cdf, v2_codec.model.entropy.cdf)
    codec = Codec(model, name, "ef" * 32)
    assert codec.qualities == tuple(range(1, TINY.qualities + 1))


def test_corrupt_side_information_raises_bitstream_error_only(v2_codec, clip):
    """Flipped or cut bytes in the latents (z and y) and motion chunks, an extra chunk, a bad quality byte:
    BitstreamError or a decoded frame, never anything else."""
    coder = FrameCoder(v2_codec, clip.shape[2], clip.shape[1], v2_codec.levels[2], 32)
    packets = [coder.encode(f)[0] for f in clip[:2]]
    rng = np.random.default_rng(1)
    outcomes = {"ok": 0, "error": 0}
    for trial in range(60):
        k = int(rng.integers(0, 2))
        chunks = list(packets[1].chunks) + ([b"x"] if trial % 11 == 0 else [])
        data = bytearray(chunks[k])
        if data and trial % 3:
            for _ in range(int(rng.integers(1, 4))):
                data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
        else:
            data = data[: int(rng.integers(0, len(data) + 1))] + bytes(rng.integers(0, 256, 3, dtype=np.uint8))
        chunks[k] = bytes(data)
        quality = 2 if trial % 7 else int(rng.integers(0, 256))
        dec = FrameCoder(v2_codec, clip.shape[2], clip.shape[1], v2_codec.levels[2], 32)
        dec.decode(packets[0])
        try:
            frame = dec.decode(Packet(FrameType.P, tuple(chunks), quality))
            assert frame.shape == clip.shape[1:]
            outcomes["ok"] += 1
        except BitstreamError:
            outcomes["error"] += 1
    assert outcomes["error"] > 0


def test_format_versions_of_the_rvq_models_are_refused_in_one_line(v2_codec):
    for version in (1, 2):
        header = StreamHeader(width=64, height=48, fps=30, frame_count=0, quality=2, gop=8, model_name="old",
                              model_hash=bytes(8), version=version)   # a 1.x stream names 1.x's weights
        with pytest.raises(BitstreamError, match=f"format version {version} stream holds an RVQ model") as e:
            v2_codec.check_stream(header)
        assert "\n" not in str(e.value)


def test_rvq_model_files_are_refused_in_one_line(v2_codec, tmp_path):
    """A 1.x model file (rate_model 0, or no rate_model at all: the files before it) is refused by its config."""
    from safetensors.torch import save_file
    from neuralcodec.codec import ModelError
    from neuralcodec.registry import FORMAT
    for rvq in ({"rate_model": 0}, {}):
        cfg = {**json.loads(v2_codec.model.cfg.to_json()), "num_stages": 8, "codebook_size": 256, **rvq}
        if not rvq:
            del cfg["rate_model"]
        path = tmp_path / "rvq.safetensors"
        save_file({"x": torch.zeros(1)}, str(path), metadata={"format": FORMAT, "name": "old",
                                                              "config": json.dumps(cfg)})
        with pytest.raises(ModelError, match="an RVQ model .* no longer runs") as e:
            read_model(path)
        assert "\n" not in str(e.value)


def test_scale_index_exact_path_matches_training_path(v2_codec):
    """The float32 straight-through path that training sees gives the exact path's indexes (up to rare rounding
    ties), so the rate it learns is the rate coded."""
    rng = np.random.default_rng(2)
    z = torch.from_numpy(rng.integers(-3, 4, (1, TINY.hyper_dim, 2, 3))).float()
    prev = torch.from_numpy(rng.integers(-4, 5, (1, TINY.latent_dim, 8, 12))).float()
    for hyper, p in ((v2_codec.model.hyper_i, None), (v2_codec.model.hyper_p, prev)):
        with torch.no_grad():
            train = hyper(z, p).long()
        exact = hyper.index_exact(z.long(), None if p is None else p.long())
        assert (train == exact).float().mean() > 0.99
        assert json.dumps(exact.unique().tolist())   # integers in range
        assert 0 <= int(exact.min()) and int(exact.max()) < SCALE_LEVELS


def tiny_pack(tmp_path):
    """A training pack of one small video (train and val) and one photo."""
    from neuralcodec.training import pack as K
    from neuralcodec.training.data import prepare as Pr
    root = tmp_path / "data"
    video = textured_clip(12, 64, 96, pan=1, seed=4)
    entries = [Pr.write_clip(root, "video", "vid", "train", video[:9]),
               Pr.write_clip(root, "video", "vid", "val", video[9:])]
    entries += Pr.write_photo(root, "a", "train", textured_clip(1, 96, 128, seed=5)[0], scales=(96,))
    Pr.write_manifest(root, entries)
    pack = tmp_path / "t.ncpack"
    K.build_pack(root, pack, log=lambda m: None)
    return pack


def test_train_v2_gpu_preset_tiny_on_cpu_continues_a_model_and_exports(tmp_path):
    """The v2 training command with the GPU preset, its sizes shrunk on the command line (which wins): it reads a
    pack, continues a model file, checkpoints, resumes, and exports a model with the record carried on."""
    from neuralcodec.registry import load_codec
    from neuralcodec.training.train_v2 import PRESETS, main
    pack = tiny_pack(tmp_path)
    start = tmp_path / "start.safetensors"
    save_model(make_tiny_model(), "tiny-v2", start, half=False,
               card={"version": "2.0", "steps": 100, "cpu_hours": 0.5, "gpu_hours": 0.0, "commands": ["first"]})
    out, shipped = tmp_path / "run", tmp_path / "v2.safetensors"
    small = ["--data-root", str(pack), "--batch-size", "2", "--crop", "32", "--clip-len", "2", "--out", str(out)]
    main(["--preset", "gpu", "--init-from", str(start), "--steps", "2"] + small)
    st = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    assert st["record"]["steps"] == 2 and st["train_config"]["crop"] == 32
    assert st["train_config"]["lr"] == PRESETS["gpu"]["lr"] and st["optimizer"] is not None
    w = "i_enc.net.0.1.weight"
    assert st["ema"] is not None and not torch.equal(st["ema"][w], st["model"][w])  # the average lags the weights
    # a resume takes the run's settings (crop, batch, data, folder) from the checkpoint, the options given win
    main(["--resume", str(out / "latest.pt"), "--steps", "1", "--export", str(shipped), "--version", "2.1"])
    st = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    assert st["train_config"]["crop"] == 32 and st["train_config"]["batch_size"] == 2 and st["record"]["steps"] == 3
    codec = load_codec(shipped)
    exported = codec.model.state_dict()[w].float()      # the export is the average, not the last weights
    assert (exported - st["ema"][w]).abs().max() < (exported - st["model"][w]).abs().max()
    assert codec.card["version"] == "2.1"
    t = codec.card["training"]
    assert t["steps"] == 103 and t["gpu_hours"] == 0.0 and 0.5 < t["cpu_hours"] < 0.5 + 1 / 60
    assert t["commands"][0] == "first" and "--resume" in t["commands"][1]
    frames = textured_clip(3, 40, 48, pan=1, seed=3)
    assert codec.decode(codec.encode(frames, quality=2)).shape == frames.shape


def test_train_v2_learning_rate_schedule_and_weight_average():
    """The cosine schedule runs from the full rate to lr_end over the run (minutes or steps, whichever ends it), and
    the weight average moves (1 - decay) of the way to the weights at each update, its decay warmed up."""
    from neuralcodec.training.train_v2 import V2Config, WeightAverage, lr_factor
    cfg = V2Config(minutes=10, lr_end=0.1)
    assert lr_factor(cfg, 0, 0) == 1.0 and abs(lr_factor(cfg, 10, 0) - 0.1) < 1e-12
    assert abs(lr_factor(cfg, 5, 0) - 0.55) < 1e-12 and lr_factor(cfg, 20, 0) == lr_factor(cfg, 10, 0)
    assert lr_factor(V2Config(minutes=10), 7, 0) == 1.0                       # lr_end 1: constant
    assert abs(lr_factor(V2Config(minutes=100, steps=10, lr_end=0.0), 1, 5) - 0.5) < 1e-12
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(1.0)
    fresh, warm = WeightAverage(net, 0.9), WeightAverage(net, 0.9, updates=1000)
    with torch.no_grad():
        net.weight.fill_(3.0)
    fresh.update(net)
    warm.update(net)
    # a fresh average's decay warms up ((1 + 0) / (10 + 0) = 0.1 at its first update): the start fades at once
    assert torch.allclose(fresh.state_dict(net)["weight"], torch.full((1, 2), 2.8))
    assert torch.allclose(warm.state_dict(net)["weight"], torch.full((1, 2), 1.2)) and warm.updates == 1001
    again = WeightAverage(net, 0.9, warm.state_dict(net), warm.updates)       # resumed from a checkpoint
    assert torch.equal(again.state_dict(net)["weight"], warm.state_dict(net)["weight"])


def test_train_v2_adversarial_loss_after_its_warm_up_and_across_a_resume(tmp_path):
    """--gan-weight: the discriminator trains from step --gan-start of the run on, its state and the run's step
    count are checkpointed, and a resumed run continues them."""
    from neuralcodec.training.train_v2 import main
    start = tmp_path / "start.safetensors"
    save_model(make_tiny_model(), "tiny-v2", start, half=False, card={"version": "2.0"})
    out = tmp_path / "run"
    small = ["--data-root", str(tiny_pack(tmp_path)), "--batch-size", "2", "--crop", "32", "--clip-len", "2",
             "--out", str(out), "--gan-weight", "0.1", "--gan-start", "2"]
    main(["--init-from", str(start), "--steps", "2"] + small)
    st = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    disc0 = {k: v.clone() for k, v in st["adversarial"]["disc"].items()}
    assert st["adversarial"]["steps"] == 2 and not st["adversarial"]["optimizer"]["state"]   # warm-up: untouched
    main(["--resume", str(out / "latest.pt"), "--steps", "2"] + small)
    st = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    assert st["adversarial"]["steps"] == 4 and st["record"]["steps"] == 4
    assert any(not torch.equal(v, disc0[k]) for k, v in st["adversarial"]["disc"].items())
    assert all(torch.isfinite(v).all() for v in st["model"].values() if v.is_floating_point())


def test_run_clock_counts_steps_not_pauses():
    """Training time: steps count in full, slow ones too (8.9 s steps of emulated bf16), a stop does not."""
    from neuralcodec.training.train_v2 import PAUSE_S, RunClock
    clock, t, total = RunClock(0.0), 0.0, 0.0
    for _ in range(50):
        t += 1.4
        total += clock.tick(t)
    assert abs(total - 70.0) < 1e-9
    t += 300.0                                   # stopped for five minutes
    assert clock.tick(t) == PAUSE_S
    slow, t = RunClock(0.0), 0.0
    for _ in range(20):
        t += 12.0
        assert slow.tick(t) == 12.0              # steps longer than PAUSE_S are not pauses
    assert abs(slow.tick(t + 600.0) - 60.0) < 1e-9   # five typical steps at most
