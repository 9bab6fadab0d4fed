"""Experiment: model v2 with its P-frame latent at 1/8 resolution instead of 1/16 (the I-frame coder stays fixed).

Question: v2's P-frames cannot add detail to their reference (gop_v2.py: even the unrounded P latent adds 0-0.3 dB
to the motion-compensated prediction), while the RVQ model's P residual at 1/8 rises 2-3 dB above its I-frame.
Is it the 1/16 resolution of the P latent? Start from a trained v2 model, rebuild the P encoder and decoder at 1/8
(their 1/2-1/8 layers copied, the 1/16 stage dropped, new latent projections), keep the hyperprior (z at 1/32 of
y now), condition the P entropy model on the previous latent (an I-frame latent upsampled 2x), train only the
P-frame coder on 3-frame clips, then print the same per-frame table as gop_v2.py.

Needs the v2 code (git worktree add /tmp/v2 d71acce):
    NCODEC_TREE=/tmp/v2 NCODEC_PACK=data/train.ncpack python p8_experiment.py V2_MODEL MINUTES OUT.pt
Training only (rate + lambda x MSE, lambdas of the v2 trainer, bf16 autocast, EMA for the evaluation); the
coding layer is not adapted, so the bits are the entropy model's estimate (within a few % of the coded size
for v2). Not product code.
"""
import copy
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.environ.get("NCODEC_TREE", "."))
import neuralcodec  # noqa: E402
from neuralcodec.model.codec_model import VideoCodecModel  # noqa: E402
from neuralcodec.model.layers import ResBlock, act  # noqa: E402
from neuralcodec.training.data import PackDataset  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gop_v2 import gop_table  # noqa: E402  (the same per-frame table as for the baseline)

PACK = os.environ.get("NCODEC_PACK", "data/train.ncpack")


class Enc8(nn.Module):
    """[x, warped] -> y at 1/8: the source encoder's 1/2-1/8 layers, one new residual block, a new projection."""

    def __init__(self, src: nn.Module, c3: int, latent: int):
        super().__init__()
        self.net = nn.Sequential(*[copy.deepcopy(m) for m in list(src.net)[:6]], ResBlock(c3),
                                 nn.Conv2d(c3, latent, 3, padding=1))

    def forward(self, x):
        return self.net(x)


class Dec8(nn.Module):
    """y at 1/8 + context (1/2, 1/4, 1/8) -> residual: the source decoder's 1/8-1/2 stages, a new input layer."""

    def __init__(self, src: nn.Module, c3: int, latent: int):
        super().__init__()
        self.inp = nn.Conv2d(latent, c3, 3, padding=1)
        for name in ("b8", "up4", "b4", "up2", "b2", "out"):
            setattr(self, name, copy.deepcopy(getattr(src, name)))

    def forward(self, y, ctx):
        h = self.inp(y) + ctx[2]
        h = self.up4(self.b8(h)) + ctx[1]
        h = self.up2(self.b4(h)) + ctx[0]
        return self.out(self.b2(h))


class P8(VideoCodecModel):
    def adopt(self, base: VideoCodecModel) -> "P8":
        self.load_state_dict(base.state_dict())
        c3, m = self.cfg.channels[2], self.cfg.latent_dim
        self.p_enc8, self.p_dec8 = Enc8(base.p_enc, c3, m), Dec8(base.p_dec, c3, m)
        del self.p_enc, self.p_dec
        return self

    @staticmethod
    def _prev8(prev, x):
        if prev is not None and prev.shape[-2] * 16 == x.shape[-2]:   # an I-frame latent (1/16): nearest 2x
            prev = F.interpolate(prev, scale_factor=2, mode="nearest")
        return prev

    def analyse(self, intra, x, q, warped):
        if intra:
            return super().analyse(intra, x, q, warped)
        with self._amp():
            y = self.p_enc8(torch.cat([x, warped], 1))
        return y.float() * self._gain(intra, q)

    def synthesise(self, intra, y_hat, q, warped):
        if intra:
            return super().synthesise(intra, y_hat, q, warped)
        y = y_hat * self._gain(intra, q, inverse=True)
        with self._amp():
            out = warped + self.p_dec8(y, self.p_ctx(warped)[:3])
        return out.float()

    def _train_frame(self, intra, x, q, ref, prev):
        return super()._train_frame(intra, x, q, ref, None if intra else self._prev8(prev, x))

    def encode_frame(self, x, q, ref=None, prev=None, mv=None):
        return super().encode_frame(x, q, ref, None if ref is None else self._prev8(prev, x), mv)


def main(cls=None):
    """Train cls (P8 or a variant of it) as the module docstring says."""
    src, minutes, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    torch.manual_seed(0)
    base = neuralcodec.load_codec(src).model
    m = (cls or P8)(base.cfg).adopt(base)
    m.autocast = True
    frozen = ("i_enc", "i_dec", "i_hyper_a", "i_hyper_s", "i_zprior")
    params = [p for n, p in m.named_parameters() if not n.startswith(frozen)]
    for n, p in m.named_parameters():
        p.requires_grad_(not n.startswith(frozen))
    opt = torch.optim.Adam(params, lr=2e-4)
    ema = copy.deepcopy(m).eval()
    lams = torch.exp(torch.linspace(math.log(0.0005), math.log(0.05), m.cfg.num_qualities)) * 255 ** 2
    # 176 crops: every source, bigbuckbunny (320x180) and the procedural clips (180x240) included
    ds = PackDataset(PACK, "train", clip_len=3, crop=176, seed=7)
    gen = torch.Generator().manual_seed(7)
    t0, step, log = time.time(), 0, []
    while time.time() - t0 < 60 * minutes:
        p = (time.time() - t0) / (60 * minutes)
        lr = 2e-4 * min(1.0, (step + 1) / 100) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))
        for g in opt.param_groups:
            g["lr"] = lr
        clip = ds.sample(3, gen)
        b, t, _, h, w = clip.shape
        q = torch.randint(0, m.cfg.num_qualities, (b,), generator=gen)
        m.train()
        o = m(clip, q, intra_grad=False)
        bpp = (o.bits_y + o.bits_z)[:, 1:].sum(1) / ((t - 1) * h * w)             # P-frames only
        mse = (o.recon[:, 1:] - clip[:, 1:]).pow(2).mean((1, 2, 3, 4))
        loss = (bpp + lams[q] * mse).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        m.log_gain.grad[0] = 0
        m.log_inv_gain.grad[0] = 0
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            d = min(0.999, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), m.parameters()):
                pe.lerp_(pm, 1 - d)
        step += 1
        if step % 50 == 0:
            log.append((step, round(time.time() - t0), float(loss), float(bpp.mean()),
                        -10 * math.log10(float(mse.mean()))))
            print("step %d %ds loss %.4f P bpp %.4f P psnr %.2f lr %.2e" % (*log[-1], lr), flush=True)
    torch.save({"ema": ema.state_dict(), "steps": step, "log": log}, out)
    print(f"{step} steps in {time.time() - t0:.0f} s; EMA weights in {out}", flush=True)
    ema.autocast = False        # float32 inference, as gop_v2.py measured the baseline
    gop_table(ema)


if __name__ == "__main__":
    main()
