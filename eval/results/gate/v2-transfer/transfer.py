"""Experiment (not product code): the learned-rate design on the shipped RVQ model's I *and* P transforms.

As iframe_transfer.py, for whole clips: frame 0 an I-frame, the rest P-frames coded as the shipped model codes them
(encoder-side quarter-pel motion on the previous reconstruction, the residual x - warped through its P encoder,
its P decoder conditioned on the warped frame), with each RVQ replaced by per-quality channel gains, rounding and
a scale hyperprior; the P-frames' hyperprior also sees the previous frame's integers (clamped to +-15). Trained on
the bits of all frames + lambda x MSE (one quality per clip, lambda log-spaced over 16 qualities). The I part can
start from an iframe_transfer.py run (--init-i).

Evaluated like the ship gate: the gate's validation clips (first 20 frames each, one GOP, scene cuts coded as
I-frames by the encoder's rule), all 16 qualities, rate = the model's estimated bits of every frame's latents and
side latents + the motion vectors coded for real with the shipped model's tables; BD-rate (PSNR-RGB, MS-SSIM)
against 1.17's gate points (eval/results/gate/ncodec-base-v1.17.val-rd.json: real file sizes).

    PYTHONPATH=. python eval/results/gate/v2-transfer/transfer.py --minutes 100 --init-i runs/xfer/latest.pt \
        --out runs/xfer_ip
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from compressai.entropy_models import EntropyBottleneck
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from iframe_transfer import Q, gauss_lik  # noqa: E402

from eval.bdrate import average, bd_rate  # noqa: E402
from eval.compare import validation_clips  # noqa: E402
from eval.metrics import msssim, psnr_rgb  # noqa: E402
from neuralcodec import load_codec  # noqa: E402
from neuralcodec.coding import EntropyCoder  # noqa: E402
from neuralcodec.coding.frame_coder import DEFAULT_SCENECUT, SCENECUT_MAX_PSNR  # noqa: E402
from neuralcodec.model.codec_model import to_levels  # noqa: E402
from neuralcodec.training.data import PackDataset  # noqa: E402
from neuralcodec.training.losses import msssim as loss_msssim  # noqa: E402

CTX_CLAMP = 15


class Hyper(nn.Module):
    """z = ha(y) at 1/4 of the latent's resolution, factorized prior; log sigma = out(hs(z) [+ ctx(prev)])."""

    def __init__(self, d: int = 16, ctx: bool = False):
        super().__init__()
        self.ha = nn.Sequential(nn.Conv2d(d, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 5, 2, 2), nn.ReLU(),
                                nn.Conv2d(64, 32, 5, 2, 2))
        self.hs = nn.Sequential(nn.ConvTranspose2d(32, 64, 5, 2, 2, 1), nn.ReLU(),
                                nn.ConvTranspose2d(64, 64, 5, 2, 2, 1))
        self.ctx = nn.Sequential(nn.Conv2d(d, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1)) \
            if ctx else None
        self.out = nn.Conv2d(64, d, 3, padding=1)
        self.eb = EntropyBottleneck(32)

    def forward(self, y, prev=None):
        z_hat, z_lik = self.eb(self.ha(y))
        h = self.hs(z_hat)
        if self.ctx is not None and prev is not None:
            h = h + self.ctx(prev.clamp(-CTX_CLAMP, CTX_CLAMP))
        return self.out(torch.relu(h)), z_lik


class TransferCodec(nn.Module):
    def __init__(self, base, std_i, std_p):
        super().__init__()
        self.base = base
        k = torch.logspace(math.log10(2.0), math.log10(0.08), Q)[:, None]
        self.gi = nn.Parameter(-torch.log(k * std_i.flatten()[None]))
        self.gp = nn.Parameter(-torch.log(k * std_p.flatten()[None]))
        self.hi, self.hp = Hyper(std_i.numel()), Hyper(std_p.numel(), ctx=True)

    def code(self, y, log_gain, hyper, prev):
        g = log_gain.exp()[:, :, None, None]
        ys = y.float() * g
        log_sigma, z_lik = hyper(ys, prev)
        if self.training:
            y_rate = ys + torch.empty_like(ys).uniform_(-0.5, 0.5)
            y_dec = ys + (torch.round(ys) - ys).detach()
        else:
            y_rate = y_dec = torch.round(ys)
        lik = gauss_lik(y_rate, log_sigma.exp())
        bits = -(lik.log2().sum((1, 2, 3)) + z_lik.log2().sum((1, 2, 3)))
        return y_dec / g, bits, torch.round(ys).detach()

    def intra(self, x, q):
        yq, bits, sym = self.code(self.base.i_enc(x), self.gi[q], self.hi, None)
        return self.base.i_dec(yq).float() + 0.5, bits, sym

    def inter(self, x, warped, q, prev):
        m = self.base
        yq, bits, sym = self.code(m.p_enc(x - warped), self.gp[q], self.hp, prev)
        return warped + m.p_dec(yq, m.p_ctx(warped)).float(), bits, sym

    def forward(self, clip, q):
        """Training pass: (recon (B, T, 3, H, W), bits (B,) of all frames)."""
        xhat, bits, sym = self.intra(clip[:, 0], q)
        recons = [xhat]
        for t in range(1, clip.shape[1]):
            ref = xhat.detach().clamp(0, 1)
            with torch.no_grad():
                warped = self.base.warp(ref, self.base.motion(clip[:, t], ref))
            xhat, b, sym = self.inter(clip[:, t], warped, q, sym)
            bits = bits + b
            recons.append(xhat)
        return torch.stack(recons, 1), bits


@torch.no_grad()
def code_clip(m, coder, frames, q):
    """One GOP with scene cuts: (total bits, decoded uint8 frames, bits of each frame, its type "I" or "P")."""
    align = 32
    out, sizes, types, prev_mse, sym, ref = [], [], [], None, None, None
    for f in frames:
        x = torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255
        h, w = x.shape[-2:]
        x = torch.nn.functional.pad(x, (0, -w % align, 0, -h % align), mode="replicate")
        intra = ref is None
        if not intra:
            mv = m.base.motion(x, ref)
            warped = m.base.warp(ref, mv)
            mse = float((warped - x).pow(2).mean())
            if prev_mse is not None and mse > prev_mse * 10 ** (DEFAULT_SCENECUT / 10) \
                    and mse > 10 ** (-SCENECUT_MAX_PSNR / 10):
                intra = True
            else:
                prev_mse = mse
        if intra:
            xhat, b, sym = m.intra(x, torch.tensor([q]))
            prev_mse, bits = None, float(b.sum())
        else:
            xhat, b, sym = m.inter(x, warped, torch.tensor([q]), sym)
            bits = float(b.sum()) + 8 * len(coder.encode_motion(mv[0].numpy()))
        sizes.append(bits)
        types.append("I" if intra else "P")
        ref = to_levels(xhat)
        out.append((ref[0, :, :h, :w].permute(1, 2, 0) * 255).round().byte().numpy())
    return sum(sizes), np.stack(out), sizes, types


def evaluate(m, coder, clips, ref_json, qualities=range(Q)):
    m.eval()
    pts, res = {}, {}
    for name, frames in clips.items():
        t, h, w = frames.shape[:3]
        pts[name] = []
        for q in qualities:
            bits, dec, sizes, types = code_clip(m, coder, frames, q)
            mean = {k: np.mean([b for b, ty in zip(sizes, types) if ty == k] or [np.nan]) for k in "IP"}
            pts[name].append({"quality": q + 1, "bpp": bits / (t * h * w), "psnr_rgb": psnr_rgb(frames, dec),
                              "msssim": msssim(frames, dec)[0], "i_frames": types.count("I"),
                              "p_over_i": float(mean["P"] / mean["I"])})
    ref = json.loads(Path(ref_json).read_text())["clips"]
    for metric in ("psnr_rgb", "msssim"):
        per = {n: bd_rate([p["bpp"] for p in ref[n]], [p[metric] for p in ref[n]],
                          [p["bpp"] for p in pts[n]], [p[metric] for p in pts[n]]) for n in pts}
        res[metric] = {"mean": average(per)["value"], **{n: v["value"] for n, v in per.items()}}
    m.train()
    return res, pts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=100)
    p.add_argument("--out", default="runs/xfer_ip")
    p.add_argument("--pack", default="data/train.ncpack")
    p.add_argument("--init-i", help="an iframe_transfer.py state (its I gains and hyperprior)")
    p.add_argument("--resume", help="a state of this script")
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--clip-len", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--eval-every-min", type=float, default=50)
    p.add_argument("--w-msssim", type=float, default=0.0, help="distortion = MSE + this x (1 - MS-SSIM), per clip")
    p.add_argument("--lam-lo", type=float, default=0.0003)
    p.add_argument("--lam-hi", type=float, default=0.05)
    p.add_argument("--ref", default="eval/results/gate/ncodec-base-v1.17.val-rd.json")
    p.add_argument("--eval-only", action="store_true")
    p.add_argument("--save-weights", help="write the --resume state's weights as fp16 safetensors (to commit) and stop")
    p.add_argument("--eval-q", help="qualities (1-16) to evaluate, comma-separated (default all)")
    a = p.parse_args()
    qualities = [int(v) - 1 for v in a.eval_q.split(",")] if a.eval_q else list(range(Q))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    codec = load_codec()
    coder = EntropyCoder(codec.model.cfg, codec.model.entropy.cdf)
    clips = validation_clips(a.pack, 20)
    base = codec.model.float().train()
    ds = PackDataset(a.pack, "train", a.clip_len, a.crop, seed=2)
    with torch.no_grad():
        c = ds.sample(8, torch.Generator().manual_seed(0))
        std_i = base.i_enc(c[:, 0]).std((0, 2, 3))
        warped = base.warp(c[:, 0], base.motion(c[:, 1], c[:, 0]))
        std_p = base.p_enc(c[:, 1] - warped).std((0, 2, 3)).clamp(min=1e-3)
    m = TransferCodec(base, std_i, std_p)
    step, minutes = 0, 0.0
    if a.resume and a.resume.endswith(".safetensors"):   # the committed weights (fp16): training goes on from them
        from safetensors import safe_open
        from safetensors.torch import load_file
        missing, unexpected = m.load_state_dict({k: v.float() for k, v in load_file(a.resume).items()}, strict=False)
        assert not unexpected and all(k.startswith(("base.i_vq", "base.p_vq", "base.entropy")) for k in missing)
        with safe_open(a.resume, "pt") as f:
            meta = f.metadata()
        step, minutes = int(meta["step"]), float(meta["minutes"])
    elif a.resume:
        st = torch.load(a.resume, map_location="cpu", weights_only=True)
        m.load_state_dict(st["model"])
        step, minutes = st["step"], st["minutes"]
    elif a.init_i:
        st = torch.load(a.init_i, map_location="cpu", weights_only=True)
        ren = {"log_gain": "gi", "hs.0.": "hi.hs.0.", "hs.2.": "hi.hs.2.", "hs.4.": "hi.out.", "ha.": "hi.ha.",
               "eb.": "hi.eb.", "enc.": "base.i_enc.", "dec.": "base.i_dec."}
        new = {}
        for k, v in st.items():
            for a_, b_ in ren.items():
                if k.startswith(a_):
                    new[b_ + k[len(a_):]] = v
                    break
        missing, unexpected = m.load_state_dict(new, strict=False)
        assert not unexpected and all(k.startswith(("base.p_", "base.i_vq", "base.p_vq", "base.entropy", "gp",
                                                    "hp.")) for k in missing), (missing, unexpected)
    if a.save_weights:
        from safetensors.torch import save_file
        # the transforms in fp16, the rest in fp32 (the entropy bottleneck's 1e-9 likelihood bound is 0 in fp16)
        state = {k: (v.half() if v.is_floating_point() and k.startswith("base.") else v).contiguous()
                 for k, v in m.state_dict().items() if not k.startswith(("base.i_vq", "base.p_vq", "base.entropy"))}
        save_file(state, a.save_weights, metadata={"step": str(step), "minutes": f"{minutes:.2f}"})
        return
    if a.eval_only:
        r, pts = evaluate(m, coder, clips, a.ref, qualities)
        print(json.dumps({"step": step, "minutes": minutes, "bd_vs_1.17": r, "points": pts}))
        return
    lams = torch.logspace(math.log10(a.lam_lo), math.log10(a.lam_hi), Q) * 255 ** 2
    skip = ("base.i_vq", "base.p_vq", "base.entropy")
    named = [(n, p) for n, p in m.named_parameters() if not n.startswith(skip)]
    main_p = [p for n, p in named if n.startswith("base.")]
    aux_p = [p for n, p in named if n.endswith("quantiles")]
    new_p = [p for n, p in named if not n.startswith("base.") and not n.endswith("quantiles")]
    opt = torch.optim.Adam([{"params": main_p, "lr": a.lr}, {"params": new_p, "lr": 1e-3}])
    aux = torch.optim.Adam(aux_p, lr=1e-3)
    gen = torch.Generator().manual_seed(3)
    log = (out / "log.jsonl").open("a")
    t0 = time.time() - 60 * minutes
    next_eval, next_save = minutes + a.eval_every_min, minutes + 5
    start = minutes
    while True:
        minutes = (time.time() - t0) / 60
        done = minutes - start >= a.minutes
        if minutes >= next_save or done:
            torch.save({"model": m.state_dict(), "step": step, "minutes": minutes}, out / "latest.pt")
            next_save += 5
        if minutes >= next_eval or done:
            te = time.time()
            r, pts = evaluate(m, coder, clips, a.ref, qualities)
            rec = {"step": step, "minutes": round(minutes, 1), "bd_vs_1.17": r, "points": pts}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            next_eval += a.eval_every_min
            t0 += time.time() - te    # evaluation time is not training time
        if done:
            break
        clip = ds.sample(a.batch, gen).contiguous()
        q = torch.randint(0, Q, (a.batch,), generator=gen)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            xhat, bits = m(clip, q)
        mse = (xhat.float() - clip).pow(2).mean((1, 2, 3, 4))
        bpp = bits / (clip.shape[1] * clip.shape[-1] * clip.shape[-2])
        dist = mse
        if a.w_msssim > 0:   # each clip's own MS-SSIM under its own lambda (a batch mean under the mean lambda
            #                  pulled every quality to the top: the second phase of the 2026-12-07 run)
            ms = torch.stack([loss_msssim(xhat[i].float(), clip[i]) for i in range(len(q))])
            dist = mse + a.w_msssim * (1 - ms)
        loss = (bpp + lams[q] * dist).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        al = m.hi.eb.loss() + m.hp.eb.loss()
        aux.zero_grad()
        al.backward()
        aux.step()
        step += 1
        if step % 25 == 0:
            rec = {"step": step, "min": round(minutes, 2), "loss": float(loss), "bpp": float(bpp.mean()),
                   "psnr": -10 * math.log10(float(mse.mean()))}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
