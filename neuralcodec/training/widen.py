"""A wider integer latent for a trained model v2, grown without changing what it codes (training-side surgery).

The shipped model's quality saturates at its top qualities (the autoencoder's own ceiling: its decoder fed the
unrounded latent does no better than the integers at quality 16): 16 channels at 1/8 resolution, a quarter of a
value per pixel. `widen_latent` gives the I and P latents more channels so that training can go on from the
shipped weights (`train_v2 --init-from ncodec-base --latent-dim 24`) instead of from scratch:

    new encoder rows       zero             the new channels' latent is exactly 0, so it rounds to 0
    new decoder columns    small, random    (0 in, so no change out; not zero, so the encoder's rows get gradients)
    new hyperprior inputs  zero             z, and the P-frames' context from the previous integers, unchanged
    new scale outputs      zero, bias 0     the smallest scale of the table: a 0 costs about nothing
    new gain columns       each row's mean  the new channels start at their quality's typical step

So the widened model decodes every frame to the same pixels as the model it grew from, at a rate a few
thousandths of a bit per new latent element higher (the smallest scale's probability of 0 in the frozen tables),
and decoding costs a few hundred multiply-adds per pixel more (the first decoder layer and the scale layers at
1/8 resolution: 16 -> 24 channels adds 180 / 252 to the I / P decoder's 12,138 / 15,234, `model.macs`). The
frozen tables (indexed by scale, not channel) carry over."""
from __future__ import annotations

from dataclasses import replace

import torch

from ..model import LearnedRateModel

DECODER_INIT_STD = 1e-3   # the new decoder columns: small enough to change nothing while the new latents are 0


def widen_latent(model: LearnedRateModel, latent_dim: int, seed: int = 0) -> LearnedRateModel:
    """A new model with latent_dim channels (more than model's) that codes as model does (module docstring)."""
    old = model.cfg.latent_dim
    if latent_dim <= old:
        raise ValueError(f"latent_dim {latent_dim} does not widen the model's {old} channels")
    wide = LearnedRateModel(replace(model.cfg, latent_dim=latent_dim))
    src = {k: v.detach().float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    dst = wide.state_dict()
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in dst.items():
        s = src[k]
        if s.shape == v.shape or not s.is_floating_point():   # (the frozen tables: the file sets their size)
            out[k] = s.clone()
            continue
        grown = [d for d in range(v.dim()) if v.shape[d] != s.shape[d]]
        if len(grown) != 1 or s.shape[grown[0]] != old or v.shape[grown[0]] != latent_dim:
            raise ValueError(f"{k}: cannot widen {tuple(s.shape)} to {tuple(v.shape)}")
        d = grown[0]
        new = torch.zeros(v.shape, dtype=s.dtype)
        if k.startswith(("i_dec.inp.", "p_dec.inp.")) and k.endswith("weight"):
            new.normal_(0.0, DECODER_INIT_STD, generator=gen)
        elif k in ("gain_i", "gain_p"):
            new[:] = s.mean(1, keepdim=True)
        new.narrow(d, 0, old).copy_(s)
        out[k] = new
    wide.load_state_dict(out)
    return wide.train(model.training)
