"""Training: a single-process smoke run with resume, a 2-process DDP (gloo) run, and a tiny overfit."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from neuralcodec.coding import Level
from neuralcodec.training.data import prepare as P
from neuralcodec.training.losses import AdversarialLoss, distortion
from neuralcodec.model import TINY, VideoCodecModel
from neuralcodec.training.train import TrainConfig, empirical_bpp, main, psnr

from conftest import textured_clip

TINY_ARGS = ["--model-config", "tiny", "--crop", "32", "--clip-len", "2", "--batch-size", "2",
             "--warmup-steps", "2", "--kmeans-batches", "1", "--gan-start", "3", "--val-every", "4",
             "--ckpt-every", "2", "--log-every", "1"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    r = tmp_path_factory.mktemp("train_data")
    video = textured_clip(24, 48, 64, pan=1, seed=4)
    entries = [P.write_clip(r, "video", "vid", "train", video[:18]),
               P.write_clip(r, "video", "vid", "val", video[18:])]
    entries += P.write_photo(r, "a", "train", textured_clip(1, 96, 128, seed=5)[0], scales=(96,))
    entries += P.write_photo(r, "b", "val", textured_clip(1, 96, 128, seed=6)[0], scales=(96,))
    P.write_manifest(r, entries)
    return r


def test_smoke_run_and_resume(data_root, tmp_path):
    out = tmp_path / "run"
    args = TINY_ARGS + ["--data-root", str(data_root), "--out-dir", str(out), "--no-bf16"]   # float32 path
    main(args + ["--steps", "4"])
    state = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 4 and state["vq_ready"]
    cfg = TrainConfig.from_json(state["config"])
    assert cfg.model == TINY and cfg.crop == 32 and not cfg.bf16
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("kmeans_residual_energy" in r for r in rows)
    assert any("d_loss" in r for r in rows)                       # the GAN was on after gan_start
    assert any("val_psnr_i_1" in r and "val_bpp_p_3" in r for r in rows)
    assert all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
    main(args + ["--steps", "6", "--resume", "auto"])
    state = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 6
    import csv
    with (out / "log.csv").open() as f:
        elapsed = {int(r["step"]): float(r["elapsed_s"]) for r in csv.DictReader(f)}
    assert elapsed[6] >= elapsed[4] > 0 and state["elapsed_s"] >= elapsed[6] - 0.05   # the clock goes on after --resume


def test_ddp_two_cpu_processes(data_root, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "neuralcodec.training.train", *TINY_ARGS, "--data-root", str(data_root), "--out-dir", str(out),
           "--steps", "4"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    state = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 4 and state["vq_ready"]


def test_tiny_overfit_raises_psnr():
    torch.manual_seed(0)
    model = VideoCodecModel(TINY)
    clip = torch.from_numpy(textured_clip(2, 32, 32, pan=1, seed=9)).permute(0, 3, 1, 2).float()[None] / 255
    adv = AdversarialLoss(weight=0.1, start=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            p = psnr(model(clip, TINY.num_stages, bypass_vq=not model.i_vq.stages[0].initted).recon, clip)
        model.train()
        return p

    def step(bypass: bool, gan: bool) -> None:
        out = model(clip, TINY.num_stages, bypass_vq=bypass)
        x, xhat = clip.flatten(0, 1), out.recon.flatten(0, 1)
        rec, _ = distortion(x, xhat, 0.1)
        loss = rec + 0.25 * out.commit_loss
        if gan:
            g, _ = adv(xhat, x, rec, model.p_dec.out[0].weight, step=1)
            loss = loss + g
        opt.zero_grad()
        loss.backward()
        opt.step()
        if gan:
            adv.train_adv(xhat, x)

    before = evaluate()
    for _ in range(40):
        step(bypass=True, gan=False)
    with torch.no_grad():
        out = model(clip, bypass_vq=True)
        model.i_vq.init_kmeans(out.latents[0])
        model.p_vq.init_kmeans(out.latents[1])
    for _ in range(20):
        step(bypass=False, gan=True)
    after = evaluate()
    assert after > before + 3, (before, after)


def test_empirical_bpp():
    codes = torch.zeros(1, 2, 8, 8, dtype=torch.long)
    assert empirical_bpp(codes, 2) == 0
    codes[0, 0] = torch.arange(64).view(8, 8) % 2
    assert abs(empirical_bpp(codes, 2) - 1 / 64) < 1e-9


def test_training_reads_a_pack_file(data_root, tmp_path):
    from neuralcodec.training import pack as K
    pack = tmp_path / "t.ncpack"
    K.build_pack(data_root, pack, log=lambda m: None)
    out = tmp_path / "run"
    main(TINY_ARGS + ["--data-root", str(pack), "--out-dir", str(out), "--steps", "5"])
    state = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 5 and state["vq_ready"]
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in rows if "loss" in r)
    assert any("val_psnr_i_1" in r for r in rows)


def test_init_from_a_model_file(data_root, tiny_model, tmp_path):
    from neuralcodec.registry import save_model
    path = tmp_path / "tiny.safetensors"
    save_model(tiny_model, "tiny-test", path, half=False)
    out = tmp_path / "run"
    main(TINY_ARGS + ["--data-root", str(data_root), "--out-dir", str(out), "--steps", "2", "--lr", "1e-9",
                      "--init-from", str(path)])
    state = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    assert state["step"] == 2 and state["vq_ready"]            # no warm-up, no k-means: the codebooks came along
    ref = tiny_model.state_dict()
    for k in ("i_enc.net.0.1.weight", "p_dec.out.0.weight"):   # (codebooks move by their EMA updates)
        assert torch.allclose(state["model"][k], ref[k], atol=1e-6), k


def test_bf16_run_keeps_quantizer_in_float32(data_root, tmp_path):
    """--bf16 (the default) trains (finite losses, the flag stored in the checkpoint's config), and under autocast the
    quantizer still picks the float32 nearest codes of the float32 latent."""
    out = tmp_path / "bf16"
    main(TINY_ARGS + ["--data-root", str(data_root), "--out-dir", str(out), "--steps", "4", "--bf16"])
    state = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    assert TrainConfig.from_json(state["config"]).bf16 and state["step"] == 4
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in rows if "loss" in r)

    torch.manual_seed(0)
    m = VideoCodecModel(TINY).eval()
    clip = torch.rand(2, 2, 3, 32, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = m(clip, 3)
    assert got.recon.dtype == torch.float32 and all(z.dtype == torch.float32 for z in got.latents)
    assert got.mvs[1].dtype == torch.long
    # latents far from the origin and codes close together: bf16 distances would pick other codes
    for vq in (m.i_vq, m.p_vq):
        for cb in vq.stages:
            cb.embed.copy_(5 + torch.randn_like(cb.embed) * 0.05)
    z = 5 + torch.randn(2, TINY.latent_dim, 16, 16) * 0.1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes = m._quantize(m.i_vq, z.bfloat16(), 3, False).codes
    assert torch.equal(codes, m.i_vq.encode(z.bfloat16().float(), 3))


def test_speed_benchmark_prints_both_precisions(data_root, tiny_model, tmp_path, capsys):
    from neuralcodec.registry import save_model
    from neuralcodec.training import speed
    path = tmp_path / "tiny.safetensors"
    save_model(tiny_model, "tiny-test", path, half=False)
    assert speed.main(["--data-root", str(data_root), "--init-from", str(path), "--steps", "1", "--warmup", "0",
                       "--batch-size", "1", "--crop", "32"]) == 0
    text = capsys.readouterr().out
    assert "float32" in text and "bf16 autocast" in text and "speed-up" in text


def test_export_carries_the_training_record_on(data_root, tiny_model, tmp_path):
    from neuralcodec.registry import load_codec, save_model
    from neuralcodec.training import export
    start = tmp_path / "start.safetensors"
    levels = {1: Level(1, 0.0, 0.1), 2: Level(3, 0.0, 0.0)}
    save_model(tiny_model, "tiny-test", start, half=False, levels=levels,
               card={"version": "0.1", "steps": 120, "cpu_hours": 0.5, "gpu_hours": 0.25, "commands": ["first run"]})
    out = tmp_path / "run"
    main(TINY_ARGS + ["--data-root", str(data_root), "--out-dir", str(out), "--steps", "3", "--init-from", str(start)])
    shipped = tmp_path / "next.safetensors"
    assert export.main([str(out / "latest.pt"), "-o", str(shipped), "--name", "tiny-test", "--data-root",
                        str(data_root), "--clips", "1", "--clip-len", "2", "--crop", "32", "--version", "0.2",
                        "--history-from", str(start), "--command", "second run"]) == 0
    t = load_codec(shipped).card["training"]
    assert t["steps"] == 123 and t["commands"] == ["first run", "second run"] and t["gpu_hours"] == 0.25
    assert 0.5 < t["cpu_hours"] < 0.5 + 1 / 60   # this run's few seconds, from its log.csv
    assert load_codec(shipped).card["version"] == "0.2"
    assert load_codec(shipped).levels == levels     # the quality table of the model the run continued


def test_reexport_of_a_shipped_model_recounts_its_tables_on_the_codes_sent(data_root, tiny_model, tmp_path):
    """export of a shipped model keeps its weights, levels and record (one more command) and gives it new tables;
    with --ecq-passes 1 they are counted on the entropy-constrained codes the encoder sends, not the nearest."""
    from neuralcodec.coding import Level
    from neuralcodec.registry import load_codec, save_model
    from neuralcodec.training import export
    levels = {1: Level(1, 0.0, 0.2), 2: Level(2, 0.01, 0.05)}
    start = tmp_path / "start.safetensors"
    save_model(tiny_model, "tiny-test", start, levels=levels,
               card={"version": "0.1", "steps": 120, "cpu_hours": 0.5, "gpu_hours": 0.0, "commands": ["first run"]})
    common = ["--name", "tiny-test", "--data-root", str(data_root), "--clips", "2", "--clip-len", "3", "--crop", "32"]
    outs = {}
    for passes in (0, 1):
        outs[passes] = tmp_path / f"re{passes}.safetensors"
        assert export.main([str(start), "-o", str(outs[passes]), "--ecq-passes", str(passes), "--version", "0.1.1",
                            "--command", "retable"] + common) == 0
    src, re0, re1 = (load_codec(p) for p in (start, outs[0], outs[1]))
    assert re1.levels == src.levels == levels and re1.card["version"] == "0.1.1"
    assert re1.training["steps"] == 120 and re1.training["commands"] == ["first run", "retable"]
    for k, v in src.model.state_dict().items():
        if k != "entropy.cdf":
            assert torch.equal(v, re1.model.state_dict()[k]), k
    assert not torch.equal(re0.model.entropy.cdf, re1.model.entropy.cdf)
    clip = textured_clip(3, 32, 48, pan=1)
    data = re1.encode(clip, quality=1)
    assert np.asarray(re1.decode(data)).shape == clip.shape


def test_checkpoint_average_exports_and_mv_coding_override(data_root, tmp_path):
    """average --last 2 is the mean of the last two checkpoints' float tensors (integer buffers and step from the
    newest), never replaces a file without --force, and exports like any checkpoint; --mv-coding sets the
    exported model's motion coding."""
    from neuralcodec.registry import load_codec
    from neuralcodec.training import average, export
    out = tmp_path / "run"
    main(TINY_ARGS + ["--data-root", str(data_root), "--out-dir", str(out), "--steps", "4"])
    avg = out / "avg.pt"
    assert average.main(["--last", "2", str(out), "-o", str(avg)]) == 0
    a, b = (torch.load(out / f"ckpt_00000{i}.pt", map_location="cpu", weights_only=True) for i in (2, 4))
    m = torch.load(avg, map_location="cpu", weights_only=True)
    assert m["step"] == 4 and m["config"] == b["config"]
    k = "i_dec.inp.weight"
    assert not torch.equal(a["model"][k], b["model"][k])
    torch.testing.assert_close(m["model"][k], (a["model"][k].double() + b["model"][k].double()).div(2).float())
    assert torch.equal(m["model"]["i_vq.stages.0.initted"], b["model"]["i_vq.stages.0.initted"])
    before = avg.read_bytes()
    assert average.main(["--last", "2", str(out), "-o", str(avg)]) == 1 and avg.read_bytes() == before
    assert average.main([str(out / "nothing.pt"), "-o", str(tmp_path / "x.pt")]) == 1
    shipped = tmp_path / "avg.safetensors"
    assert export.main([str(avg), "-o", str(shipped), "--name", "tiny-test", "--data-root", str(data_root),
                        "--clips", "1", "--clip-len", "2", "--crop", "32", "--mv-coding", "0"]) == 0
    codec = load_codec(shipped)
    assert codec.model.cfg.mv_coding == 0 and codec.entropy.mv_tables == 2
    clip = textured_clip(3, 32, 48, pan=1)
    assert np.asarray(codec.decode(codec.encode(clip, quality=1))).shape == clip.shape


def test_gpu_preset_tiny_on_cpu_trains_from_a_model_and_exports(data_root, tiny_model, tmp_path):
    """The GPU recipe's command with its sizes shrunk by the command line (which wins over the preset): it reads a
    pack, continues from a model file, checkpoints into its folder, averages the last checkpoints and exports a model
    file that loads, with the start model's levels and its training record carried on (CPU hours here)."""
    from neuralcodec.registry import load_codec, save_model
    from neuralcodec.training import pack as K
    from neuralcodec.training.train import TRAIN_PRESETS
    pack = tmp_path / "t.ncpack"
    K.build_pack(data_root, pack, log=lambda m: None)
    start = tmp_path / "start.safetensors"
    levels = {1: Level(1, 0.0, 0.2), 2: Level(2, 0.0, 0.0)}
    save_model(tiny_model, "tiny-test", start, half=False, levels=levels,
               card={"version": "0.1", "steps": 100, "cpu_hours": 0.5, "gpu_hours": 0.0, "commands": ["first"]})
    out, shipped = tmp_path / "gpu", tmp_path / "gpu.safetensors"
    main(["--preset", "gpu", "--init-from", str(start), "--data-root", str(pack), "--out-dir", str(out),
          "--steps", "3", "--batch-size", "2", "--crop", "32", "--clip-len", "2", "--ckpt-every", "1",
          "--log-every", "1", "--average-last", "2", "--export", str(shipped), "--version", "0.2"])
    cfg = TrainConfig.from_json((out / "config.json").read_text())
    assert cfg.crop == 32 and cfg.batch_size == 2 and cfg.steps == 3              # the command line won
    assert cfg.lr == TRAIN_PRESETS["gpu"]["lr"] and cfg.time_limit_min == TRAIN_PRESETS["gpu"]["time_limit_min"]
    avg = torch.load(out / "avg.pt", map_location="cpu", weights_only=True)
    assert avg["step"] == 3 and [p.rsplit("/", 1)[-1] for p in avg["averaged"]] == ["ckpt_000002.pt", "ckpt_000003.pt"]
    codec = load_codec(shipped)
    assert codec.levels == levels and codec.card["version"] == "0.2"
    t = codec.card["training"]
    assert t["steps"] == 103 and t["gpu_hours"] == 0.0 and 0.5 < t["cpu_hours"] < 0.5 + 1 / 60
    assert t["commands"][0] == "first" and "--preset gpu" in t["commands"][1]
    frames = textured_clip(3, 32, 48, pan=1, seed=3)
    assert codec.decode(codec.encode(frames, quality=2)).shape == frames.shape


def test_time_limit_stops_the_run_with_a_checkpoint(data_root, tmp_path):
    out = tmp_path / "timed"
    main(TINY_ARGS + ["--data-root", str(data_root), "--out-dir", str(out), "--steps", "1000", "--ckpt-every", "500",
                      "--time-limit-min", "0.0001"])
    state = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    assert 1 <= state["step"] < 1000 and state["elapsed_s"] >= 0.006
