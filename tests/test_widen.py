"""Widening a trained model's latent (training.widen): it codes as before, and training can use the new channels."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcodec.codec import Codec
from neuralcodec.training.widen import widen_latent

from conftest import make_tiny_model, textured_clip


@pytest.fixture(scope="module")
def pair():
    narrow = make_tiny_model()
    return narrow, widen_latent(narrow, narrow.cfg.latent_dim + 3).eval()


def test_the_widened_model_decodes_every_quality_to_the_same_frames(pair):
    narrow, wide = pair
    assert wide.cfg.latent_dim == narrow.cfg.latent_dim + 3 and wide.entropy.exported
    clip = textured_clip(5, 64, 96, pan=2, seed=7)
    a, b = Codec(narrow, "tiny-a", "ab" * 32), Codec(wide, "tiny-b", "cd" * 32)   # names of one length
    for q in a.qualities:
        small, big = a.encode(clip, quality=q, gop=4), b.encode(clip, quality=q, gop=4)
        np.testing.assert_array_equal(b.decode(big), a.decode(small))
        assert len(small) <= len(big) <= len(small) + 8 + len(small) // 100   # the new zeros cost next to nothing


def test_training_reaches_the_new_channels_from_the_first_step(pair):
    narrow, wide = pair
    wide = widen_latent(narrow, narrow.cfg.latent_dim + 3).train()
    clip = torch.from_numpy(textured_clip(2, 64, 64, pan=2, seed=1)).permute(0, 3, 1, 2).float()[None] / 255
    q = torch.tensor([narrow.cfg.qualities - 1])
    with torch.no_grad():    # noise-free (eval) forward: the same frames
        torch.testing.assert_close(wide.eval()(clip, q)[0], narrow.eval()(clip, q)[0], rtol=0, atol=1e-6)
    wide.train()
    xhat, bits = wide(clip, q)
    (bits.mean() / 4096 + 100 * (xhat - clip).pow(2).mean()).backward()
    d = narrow.cfg.latent_dim
    for enc in (wide.i_enc, wide.p_enc):   # the distortion reaches the new encoder rows through the decoder
        assert enc.net[-1].weight.grad[d:].abs().sum() > 0


def test_it_only_widens():
    narrow = make_tiny_model()
    for dim in (narrow.cfg.latent_dim, narrow.cfg.latent_dim - 1):
        with pytest.raises(ValueError, match="does not widen"):
            widen_latent(narrow, dim)


def test_train_v2_widens_a_model_it_continues(tmp_path):
    from neuralcodec.model import ModelConfig
    from neuralcodec.registry import save_model
    from neuralcodec.training.train_v2 import main
    from test_learned_rate import tiny_pack
    start = tmp_path / "start.safetensors"
    save_model(make_tiny_model(), "tiny-v2", start, half=False, card={"version": "2.0"})
    out = tmp_path / "run"
    small = ["--data-root", str(tiny_pack(tmp_path)), "--batch-size", "2", "--crop", "32", "--clip-len", "2"]
    main(["--init-from", str(start), "--latent-dim", "6", "--steps", "1", "--out", str(out)] + small)
    st = torch.load(out / "latest.pt", map_location="cpu", weights_only=True)
    assert ModelConfig.from_json(st["model_config"]).latent_dim == 6 and st["model"]["gain_i"].shape[1] == 6
    with pytest.raises(SystemExit) as e:     # a checkpoint keeps its width: a usage error
        main(["--resume", str(out / "latest.pt"), "--latent-dim", "8", "--steps", "1"])
    assert e.value.code == 2
