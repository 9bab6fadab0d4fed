"""Experiment (not product code): can the learned-rate design start from the shipped RVQ model's transforms?

1.17's I-frame encoder and decoder (1/8 resolution, 16 channels, 16 CPU-hours of training) with the RVQ replaced by
per-quality channel gains, rounding to integers and a scale hyperprior (z at 1/32, factorized prior on z, a
Gaussian of predicted scale for each integer), trained on rate + lambda x MSE with lambda drawn per sample over
16 log-spaced values. Rounding is straight-through for the decoder, uniform noise for the rate. The hyperprior
here is a float network (an upper bound for the integer-exact one the codec would need).

Evaluated on whole I-frames of the gate's validation clips (every 5th of the first 20 frames of each), rate from
the model's likelihoods, against 1.17's I-frames coded for real (gop 1) at its 16 levels: BD-rate (PSNR-RGB).

    PYTHONPATH=. python eval/results/gate/v2-transfer/iframe_transfer.py --minutes 30 --out runs/xfer
"""
import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck
from torch import nn

from eval.bdrate import bd_rate
from eval.compare import validation_clips
from neuralcodec import load_codec
from neuralcodec.metrics import psnr_from_mse
from neuralcodec.training.data import PackDataset

Q = 16


def gauss_lik(v, sigma):
    sigma = sigma.clamp(min=0.11)
    v = v.abs()
    c = lambda t: 0.5 * torch.erfc(-t / math.sqrt(2))  # noqa: E731
    return (c((0.5 - v) / sigma) - c((-0.5 - v) / sigma)).clamp(min=1e-9)


class Transfer(nn.Module):
    def __init__(self, base, std):
        super().__init__()
        self.enc, self.dec = base.i_enc, base.i_dec
        k = torch.logspace(math.log10(2.0), math.log10(0.08), Q)
        self.log_gain = nn.Parameter(-torch.log(k[:, None] * std.flatten()[None]))   # (Q, 16)
        d = std.numel()
        self.ha = nn.Sequential(nn.Conv2d(d, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 5, 2, 2), nn.ReLU(),
                                nn.Conv2d(64, 32, 5, 2, 2))
        self.hs = nn.Sequential(nn.ConvTranspose2d(32, 64, 5, 2, 2, 1), nn.ReLU(),
                                nn.ConvTranspose2d(64, 64, 5, 2, 2, 1), nn.ReLU(), nn.Conv2d(64, d, 3, padding=1))
        self.eb = EntropyBottleneck(32)

    def forward(self, x, q):
        g = self.log_gain[q].exp()[:, :, None, None]
        y = self.enc(x).float() * g
        z = self.ha(y.abs() if False else y)
        z_hat, z_lik = self.eb(z)
        sigma = self.hs(z_hat).exp()
        if self.training:
            y_rate = y + torch.empty_like(y).uniform_(-0.5, 0.5)
            y_dec = y + (torch.round(y) - y).detach()
        else:
            y_rate = y_dec = torch.round(y)
        y_lik = gauss_lik(y_rate, sigma)
        xhat = self.dec(y_dec / g) + 0.5
        bits = -(y_lik.log2().sum((1, 2, 3)) + z_lik.log2().sum((1, 2, 3)))
        return xhat.float(), bits


def evaluate(model, clips):
    model.eval()
    res = {}
    with torch.no_grad():
        for name, frames in clips.items():
            pts = []
            for q in range(0, Q, 1):
                bits, se, n = 0.0, 0.0, 0
                for f in frames[::5]:
                    x = torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255
                    h, w = x.shape[-2:]
                    xp = F.pad(x, (0, -w % 32, 0, -h % 32), mode="replicate")
                    xhat, b = model(xp, torch.tensor([q]))
                    xhat = torch.round(xhat[..., :h, :w].clamp(0, 1) * 255) / 255
                    bits += float(b.sum())
                    se += float((xhat - x).pow(2).sum())
                    n += h * w
                pts.append((bits / n, psnr_from_mse(se / (3 * n), 1.0)))
            res[name] = pts
    model.train()
    return res


def rvq_points(codec, clips):
    res = {}
    for name, frames in clips.items():
        sel = frames[::5]
        pts = []
        for q in codec.qualities:
            data = codec.encode(sel, quality=q, gop=1, scenecut=0)
            dec = codec.decode(data).astype(np.float64) / 255
            mse = float(((dec - sel / 255.0) ** 2).mean())
            pts.append((8 * len(data) / (sel.shape[0] * sel.shape[1] * sel.shape[2]), psnr_from_mse(mse, 1.0)))
        res[name] = pts
    return res


def bd(new, ref):
    out = {}
    for name in ref:
        r = np.array(ref[name]); n = np.array(new[name])
        try:
            v = bd_rate(r[:, 0], r[:, 1], n[:, 0], n[:, 1]); out[name] = v["value"] if v["value"] is None else round(v["value"], 1)
        except Exception as e:  # no overlap
            out[name] = f"n/a ({e})"[:60]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--out", default="runs/xfer")
    p.add_argument("--pack", default="data/train.ncpack")
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--eval-every-min", type=float, default=10)
    p.add_argument("--lam-lo", type=float, default=0.0003)
    p.add_argument("--lam-hi", type=float, default=0.05)
    a = p.parse_args()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    codec = load_codec()
    clips = validation_clips(a.pack, 20)
    ref = rvq_points(codec, clips)
    print("rvq", json.dumps(ref), flush=True)
    base = codec.model.float().train()
    ds = PackDataset(a.pack, "train", 1, a.crop, seed=1)
    with torch.no_grad():
        std = torch.cat([base.i_enc(ds.sample(4, torch.Generator().manual_seed(0))[:, 0]) for _ in range(2)]).std((0, 2, 3))
    m = Transfer(base, std)
    lams = torch.logspace(math.log10(a.lam_lo), math.log10(a.lam_hi), Q) * 255 ** 2
    main_p = [p for n, p in m.named_parameters() if n.startswith(("enc.", "dec."))]
    new_p = [p for n, p in m.named_parameters() if not n.startswith(("enc.", "dec.", "eb.")) or n.startswith("eb.") and "quantiles" not in n]
    aux_p = [p for n, p in m.named_parameters() if "quantiles" in n]
    opt = torch.optim.Adam([{"params": main_p, "lr": 1e-4}, {"params": new_p, "lr": 1e-3}])
    aux = torch.optim.Adam(aux_p, lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    t0 = time.time(); step = 0; next_eval = 0.0
    log = (out / "log.jsonl").open("a")
    while True:
        el = (time.time() - t0) / 60
        if el >= next_eval or el >= a.minutes:
            r = evaluate(m, clips)
            rec = {"step": step, "minutes": round(el, 1), "bd_psnr_vs_rvq_i": bd(r, ref), "points": r}
            print(json.dumps(rec), flush=True); log.write(json.dumps(rec) + "\n"); log.flush()
            torch.save(m.state_dict(), out / "latest.pt")
            next_eval += a.eval_every_min
            if el >= a.minutes:
                break
        x = ds.sample(a.batch, gen)[:, 0].contiguous(memory_format=torch.channels_last)
        q = torch.randint(0, Q, (a.batch,), generator=gen)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            xhat, bits = m(x, q)
        mse = (xhat - x).pow(2).mean((1, 2, 3))
        bpp = bits / (x.shape[-1] * x.shape[-2])
        loss = (bpp + lams[q] * mse).mean()
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step()
        al = m.eb.loss(); aux.zero_grad(); al.backward(); aux.step()
        step += 1
        if step % 50 == 0:
            print(json.dumps({"step": step, "min": round(el, 2), "loss": float(loss), "bpp": float(bpp.mean()),
                              "psnr": psnr_from_mse(float(mse.mean()), 1.0)}), flush=True)


if __name__ == "__main__":
    main()
