"""Training: the tiny GPU preset on CPU (run, resume, export, init-from), losses, lambdas and the schedule."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neuralcodec.model import TINY
from neuralcodec.training.losses import AdversarialLoss, distortion
from neuralcodec.training.train import TrainConfig, Trainer, interp_at, lambdas, main

TINY_RUN = ["--preset", "gpu-tiny", "--device", "cpu", "--bf16", "false"]


def test_tiny_gpu_preset_runs_resumes_exports_and_accumulates(packed, tmp_path):
    _, pack, _ = packed
    out = tmp_path / "run"
    model_file = tmp_path / "m.safetensors"
    assert main(TINY_RUN + ["--data", str(pack), "--out-dir", str(out), "--steps", "4", "--lambda-max", "0.2",
                            "--export", str(model_file), "--name", "tiny-run"]) == 0
    state = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    cfg = TrainConfig.from_json(state["config"])
    assert state["step"] == 4 and cfg.model == TINY and cfg.crop == 64 and cfg.batch_size == 2
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) and r["bpp"] > 0 for r in rows if "loss" in r)
    vals = [r["val"] for r in rows if "val" in r]
    assert vals and all(len(v["points"]) >= 2 for v in vals)

    from neuralcodec import load_codec
    codec = load_codec(model_file)
    card = codec.card
    assert card["training"]["steps"] == 4 and card["training"]["cpu_hours"] > 0
    assert card["decoder_macs_per_pixel"]["p_frame"] > 0 and card["parameters"] > 0
    assert card["learning_curve"] and "--export" in card["training"]["commands"][0]
    clip = (np.random.default_rng(0).random((3, 32, 32, 3)) * 255).astype(np.uint8)
    assert codec.decode(codec.encode(clip)).shape == clip.shape

    # resume continues the step count; init-from a model file inherits its history and adds to it
    main(TINY_RUN + ["--data", str(pack), "--out-dir", str(out), "--steps", "6", "--resume", "auto"])
    assert torch.load(out / "latest.pt", map_location="cpu", weights_only=True)["step"] == 6
    model2 = tmp_path / "m2.safetensors"
    main(TINY_RUN + ["--data", str(pack), "--out-dir", str(tmp_path / "run2"), "--steps", "3", "--lambda-min", "0.01",
                     "--init-from", str(model_file), "--export", str(model2)])
    card2 = load_codec(model2).card
    # the qualities keep their meaning: an init-from run keeps the shipped lambda_max, an explicit value wins
    assert card2["train_config"]["lambda_max"] == card["train_config"]["lambda_max"] == 0.2
    assert card2["train_config"]["lambda_min"] == 0.01
    assert card2["training"]["steps"] == 7 and len(card2["training"]["commands"]) == 2
    assert card2["training"]["cpu_hours"] > card["training"]["cpu_hours"]


def test_training_step_lowers_the_loss_on_one_batch(packed):
    _, pack, _ = packed
    cfg = TrainConfig(data=str(pack), out_dir="/tmp/ncodec-test-overfit", model=TINY, crop=32, batch_size=2,
                      lr=3e-3, lr_warmup=1, bf16=False, device="cpu", val_clips=1, val_crop=32)
    tr = Trainer(cfg)
    clip = tr.train_ds.sample(2, torch.Generator().manual_seed(0))
    first = [tr.train_step(clip)["loss"] for _ in range(2)][0]
    for _ in range(25):
        tr.step += 1
        last = tr.train_step(clip)["loss"]
    assert last < 0.7 * first, (first, last)


def test_freeze_intra_trains_only_the_p_frame_coder(packed, tmp_path):
    _, pack, _ = packed
    cfg = TrainConfig(data=str(pack), out_dir=str(tmp_path / "run"), model=TINY, crop=32, batch_size=2, clip_len=2,
                      lr=1e-2, lr_warmup=1, bf16=False, device="cpu", val_clips=1, val_crop=32, freeze_intra=True)
    tr = Trainer(cfg)
    before = {k: v.clone() for k, v in tr.model.state_dict().items()}
    clip = tr.train_ds.sample(2, torch.Generator().manual_seed(0))
    for _ in range(3):
        tr.train_step(clip)
        tr.step += 1
    after = tr.model.state_dict()
    intra = [k for k in before if k.startswith("i_")]
    inter = [k for k in before if k.startswith(("p_enc", "p_dec"))]
    assert intra and all(torch.equal(before[k], after[k]) for k in intra)
    assert torch.equal(before["log_gain"][0], after["log_gain"][0])
    assert not torch.equal(before["log_gain"][1], after["log_gain"][1])
    assert any(not torch.equal(before[k], after[k]) for k in inter)


def test_lambdas_and_schedule():
    cfg = TrainConfig(model=TINY, steps=100, lr=1e-3, lr_warmup=10, lr_decay_frac=0.5, lr_min=1e-5)
    lam = lambdas(cfg)
    assert len(lam) == TINY.num_qualities and torch.all(lam[1:] > lam[:-1])
    assert abs(float(lam[0]) - cfg.lambda_min) < 1e-9 and abs(float(lam[-1]) - cfg.lambda_max) < 1e-7

    class T:
        step, elapsed = 0, 0.0
    t = T()
    t.cfg = cfg
    lr = lambda s: (setattr(t, "step", s), Trainer.lr_now(t))[1]  # noqa: E731
    t.progress = lambda: min(1.0, t.step / cfg.steps)
    assert lr(0) < lr(9) == pytest.approx(1e-3) and lr(40) == pytest.approx(1e-3)
    assert lr(75) < 1e-3 and lr(100) == pytest.approx(1e-5)


def test_interp_at():
    assert interp_at([0.1, 0.4], [30.0, 34.0], 0.2) == pytest.approx(32.0)
    assert interp_at([0.1, 0.4], [30.0, 34.0], 0.5) is None


def test_distortion_is_per_image_and_adversarial_loss_trains():
    x = torch.rand(4, 3, 48, 48)
    d, logs = distortion(x, x, 0.5)
    assert d.shape == (4,) and torch.allclose(d, torch.zeros(4), atol=1e-6) and logs["msssim"] > 0.999
    d2, _ = distortion(x, (x + 0.1 * torch.randn_like(x)).clamp(0, 1), 0.5)
    assert torch.all(d2 > 0)
    adv = AdversarialLoss(weight=0.1, start=0)
    before = adv.train_adv(x * 0.5, x)["d_loss"]
    for _ in range(20):
        after = adv.train_adv(x * 0.5, x)["d_loss"]
    assert after < before
    fake = (x * 0.5).requires_grad_()
    last = torch.nn.Parameter(torch.ones(1))
    rec = (fake * last).pow(2).mean()
    g, logs = adv(fake * last, x, rec, last, step=1)
    assert g.requires_grad and logs["d_weight"] >= 0
