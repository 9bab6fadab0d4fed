"""Training of model v2 (learned rate): `python -m neuralcodec.training.train_v2`.

Every step codes a batch of clips (an I-frame, then P-frames on their own reconstructions) at one quality per
clip, drawn uniformly over the model's qualities, and minimises bits per pixel + lambda_q x (MSE + w x (1 - MS-SSIM))
with lambda log-spaced over the qualities. The rate is the model's own estimate (the hyperprior's likelihoods,
through the integer-exact hyper-synthesis with straight-through rounding), the same probability model the coder
uses. Runs continue from a model file (`--init-from`, a shipped name or path), a checkpoint of this command
(`--resume`), and write checkpoints every few minutes; `--export` turns the last state into a model file with
frozen tables and the cumulative training record: the exponential moving average of the weights (`--ema`, kept
in the checkpoints) unless `--ema 0`. `--lr-end` decays both learning rates over the run (cosine); a run that
continues shipped weights starts again at the full rate (a warm restart).

    python -m neuralcodec.training.train_v2 --init-from ncodec-base --data-root data/train.ncpack \\
        --minutes 60 --out runs/v2 --export runs/v2/model.safetensors --version 2.1
"""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from typing import NamedTuple
from pathlib import Path

import torch

from ..model import LearnedRateModel, ModelConfig
from ..model.learned_rate import LAM_HI, LAM_LO, quality_lambdas
from ._command import run_command
from .losses import msssim_per_image


@dataclass
class V2Config:
    """One run's settings; saved in its checkpoints."""

    data_root: str = "data/train.ncpack"
    crop: int = 160
    batch_size: int = 5
    clip_len: int = 3
    lr: float = 1e-4               # transforms
    lr_new: float = 1e-3           # gains, hyperpriors
    lam_lo: float = LAM_LO         # lambda of the lowest and highest quality (x 255^2 on MSE of [0, 1] images;
    lam_hi: float = LAM_HI         # the slow presets' search assumes the defaults: LearnedRateModel.lam)
    w_msssim: float = 0.05
    gan_weight: float = 0.0        # adversarial loss (losses.AdversarialLoss, adaptive weight x this; 0: off)
    gan_start: int = 0             # steps of the run before it starts (the warm-up)
    lr_end: float = 1.0            # both learning rates end the run at this fraction (cosine from 1; 1: constant)
    ema: float = 0.999             # decay of the weights' exponential moving average, exported (0: none)
    minutes: float = 60.0
    steps: int = 0                 # stop after this many steps too (0: minutes only)
    ckpt_every_min: float = 5.0
    bf16: bool = True              # bf16 autocast where the device computes bf16 natively (else float32)
    seed: int = 0
    device: str = "auto"           # auto: CUDA when there is one (the pack is decoded onto it), else CPU


PRESETS: dict[str, dict] = {       # sizes for a machine; options given on the command line win
    # crop 160: a multiple of the model's alignment (32) that keeps the 180-pixel-high sources (bigbuckbunny, the
    # procedural clips), which larger crops drop
    "gpu": {"batch_size": 48, "crop": 160, "clip_len": 4, "minutes": 8.0, "ckpt_every_min": 1.0, "lr": 2e-4},
}


PAUSE_S = 10.0   # a step over max(PAUSE_S, 5 x the typical step) was paused (SIGSTOP): it counts as that long


class RunClock:
    """Training time: wall time between the loop's turns, except that a turn longer than max(PAUSE_S, 5 x the
    typical step) counts as that long (the process was stopped, SIGSTOP, to free the cores: not training)."""

    def __init__(self, now: float):
        self.last, self.typical = now, None

    def tick(self, now: float, timed_step: bool = True) -> float:
        """Seconds to count since the last tick; timed_step: the interval ran one training step."""
        dt, self.last = now - self.last, now
        counted = dt if self.typical is None else min(dt, max(PAUSE_S, 5 * self.typical))   # the first: in full
        if timed_step:
            self.typical = dt if self.typical is None else 0.95 * self.typical + 0.05 * min(dt, 5 * self.typical)
        return counted


def native_bf16(device: torch.device) -> bool:
    """Whether the device computes bfloat16 natively. CPUs without AVX-512 BF16 / AMX emulate it: a train_v2 step
    took 8.9 s in bf16 autocast against 1.0 s in float32 on two AVX2 cores (AMD EPYC, 2026-12-07)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def lr_factor(cfg: V2Config, minutes: float, steps: int) -> float:
    """The learning rates' factor at this point of the run: cosine from 1 to cfg.lr_end."""
    t = min(1.0, max(minutes / cfg.minutes if cfg.minutes > 0 else 0.0, steps / cfg.steps if cfg.steps else 0.0))
    return cfg.lr_end + (1 - cfg.lr_end) * 0.5 * (1 + math.cos(math.pi * t))


class WeightAverage:
    """Exponential moving average of a model's floating-point tensors (integer buffers follow the model). Its
    decay warms up as min(decay, (1 + n) / (10 + n)) after n updates (TensorFlow's num_updates rule), so the
    starting weights fade within the first few hundred steps instead of keeping decay^n of the average."""

    def __init__(self, model: torch.nn.Module, decay: float, state: dict | None = None, updates: int = 0):
        self.decay, self.updates = decay, updates
        own = model.state_dict()
        self.state = {k: (state[k] if state is not None and k in state else v).detach().clone().float()
                      for k, v in own.items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        own = model.state_dict()
        keys = list(self.state)
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_([self.state[k] for k in keys], [own[k].float() for k in keys], 1 - d)
        self.updates += 1

    def state_dict(self, model: torch.nn.Module) -> dict:
        """The model's state with the averaged tensors in place of its own (on the CPU)."""
        return {k: (self.state[k] if k in self.state else v).detach().cpu() for k, v in model.state_dict().items()}


def train(model: LearnedRateModel, cfg: V2Config, out: Path, start: dict, opt_state: dict | None = None,
          ema_state: dict | None = None, adv_state: dict | None = None) -> dict:
    """Train in place for cfg.minutes; returns the run record {steps, minutes} added to `start`'s and the weight
    average (`ema`: a state dict, or None with cfg.ema 0). With cfg.gan_weight the adversarial loss (its
    discriminator and optimizer kept in the checkpoints, adv_state on resume) joins after cfg.gan_start steps,
    weighted adaptively against the rate-distortion loss at the P decoder's last layer."""
    from .data import PackDataset
    if cfg.crop % model.cfg.align:
        raise ValueError(f"crop {cfg.crop} is not a multiple of the model's alignment {model.cfg.align}")
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg.seed + start.get("steps", 0))
    model.to(device)
    ds = PackDataset(cfg.data_root, "train", cfg.clip_len, cfg.crop, seed=cfg.seed + 2, device=device)
    lams = quality_lambdas(model.cfg.qualities, cfg.lam_lo, cfg.lam_hi).float().to(device)
    base = [p for n, p in model.named_parameters() if n.startswith(("i_", "p_"))]
    new = [p for n, p in model.named_parameters() if not n.startswith(("i_", "p_"))]
    opt = torch.optim.Adam([{"params": base, "lr": cfg.lr}, {"params": new, "lr": cfg.lr_new}])
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    base_lr = [cfg.lr, cfg.lr_new]
    # a resumed average's update count; checkpoints from before the warm-up rule (no count) had the full decay
    updates = int(start.get("ema_updates", 10 ** 6)) if ema_state is not None else 0
    ema = WeightAverage(model, cfg.ema, ema_state, updates) if cfg.ema > 0 else None
    adv = None
    if cfg.gan_weight > 0:
        from .losses import AdversarialLoss
        adv = AdversarialLoss(weight=cfg.gan_weight, start=cfg.gan_start).to(device)
        if adv_state is not None:
            adv.disc.load_state_dict(adv_state["disc"])
            adv.optimizer.load_state_dict(adv_state["optimizer"])
    run_steps = 0 if adv_state is None else int(adv_state.get("steps", 0))   # this run's, for the warm-up
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 3 + start.get("steps", 0))
    bf16 = cfg.bf16 and native_bf16(device)
    if cfg.bf16 and not bf16:
        print("train_v2: this CPU has no native bfloat16; training in float32", file=sys.stderr, flush=True)
    log = (out / "log.jsonl").open("a")
    steps, skipped, minutes = 0, 0, 0.0
    clock = RunClock(time.time())
    next_ckpt = cfg.ckpt_every_min
    model.train()
    while True:
        minutes += clock.tick(time.time(), timed_step=bool(steps or skipped)) / 60
        done = minutes >= cfg.minutes or 0 < cfg.steps <= steps
        if minutes >= next_ckpt or done:
            rec = {"steps": start.get("steps", 0) + steps, "minutes": start.get("minutes", 0.0) + minutes,
                   "gpu_minutes": start.get("gpu_minutes", 0.0) + (minutes if device.type == "cuda" else 0.0),
                   "ema_updates": 0 if ema is None else ema.updates}
            save_checkpoint(out / "latest.pt", model, cfg, rec, opt, None if ema is None else ema.state_dict(model),
                            None if adv is None else {"disc": adv.disc.state_dict(),
                                                      "optimizer": adv.optimizer.state_dict(),
                                                      "steps": run_steps + steps})
            next_ckpt += cfg.ckpt_every_min
        if done:
            model.cpu()
            return {"steps": steps, "minutes": minutes, "gpu": device.type == "cuda",
                    "ema": None if ema is None else ema.state_dict(model)}
        f = lr_factor(cfg, minutes, steps)
        for g, lr in zip(opt.param_groups, base_lr):
            g["lr"] = lr * f
        clip = ds.sample(cfg.batch_size, gen).contiguous()
        q = torch.randint(0, model.cfg.qualities, (cfg.batch_size,), generator=gen, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            xhat, bits = model(clip, q)
        xhat = xhat.float()
        mse = (xhat - clip).pow(2).mean((1, 2, 3, 4))
        bpp = bits / (clip.shape[1] * clip.shape[-1] * clip.shape[-2])
        dist = mse
        if cfg.w_msssim > 0:   # each clip's own MS-SSIM (the mean of its frames') under its own lambda
            ms = msssim_per_image(xhat.flatten(0, 1), clip.flatten(0, 1)).view(len(q), -1).mean(1)
            dist = mse + cfg.w_msssim * (1 - ms)
        loss = (bpp + lams[q] * dist).mean()
        fake = real = None
        if adv is not None and adv.active(run_steps + steps):
            fake, real = xhat.flatten(0, 1), clip.flatten(0, 1)
            g_loss, _ = adv(fake, real, (lams[q] * dist).mean(), model.p_dec.out[0].weight, run_steps + steps)
            loss = loss + g_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if not torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)):
            skipped += 1      # a batch with a non-finite loss or gradient is not applied (counted in the log)
            if skipped > 100:
                raise FloatingPointError(f"over 100 non-finite batches by step {start.get('steps', 0) + steps}")
            continue
        opt.step()
        if fake is not None:
            adv.train_adv(fake, real)
        if ema is not None:
            ema.update(model)
        steps += 1
        if steps % 25 == 0:
            rec = {"step": start.get("steps", 0) + steps, "min": round(start.get("minutes", 0.0) + minutes, 2),
                   "loss": round(loss.detach().item(), 5), "bpp": round(bpp.detach().mean().item(), 5),
                   "psnr": round(-10 * math.log10(mse.detach().mean().item()), 3), "skipped": skipped,
                   "lr": round(f, 4)}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()


def save_checkpoint(path: Path, model: LearnedRateModel, cfg: V2Config, record: dict,
                    opt: torch.optim.Optimizer | None = None, ema: dict | None = None, adv: dict | None = None) -> None:
    from ..io import atomic_output
    with atomic_output(path, force=True) as tmp:
        torch.save({"model": model.state_dict(), "model_config": model.cfg.to_json(), "train_config": asdict(cfg),
                    "record": record, "optimizer": None if opt is None else opt.state_dict(), "ema": ema,
                    "adversarial": adv}, tmp)


class Checkpoint(NamedTuple):
    model: LearnedRateModel
    record: dict                  # {steps, minutes, gpu_minutes, ema_updates} since the run's init model
    optimizer: dict | None
    ema: dict | None              # the weight average's state dict
    adversarial: dict | None      # discriminator, its optimizer, the run's step count
    train_config: dict            # the run's V2Config as a dict


def load_checkpoint(path: str | Path, weights: str = "model") -> Checkpoint:
    """A checkpoint of this command. weights: "model" (the trained weights), "ema" (their average, an error when
    the run kept none) or "auto" (the average when there is one)."""
    st = torch.load(path, map_location="cpu", weights_only=True)
    if weights == "auto":
        weights = "model" if st.get("ema") is None else "ema"
    if weights == "ema" and st.get("ema") is None:
        raise ValueError(f"{path} holds no weight average (its run had --ema 0)")
    model = LearnedRateModel(ModelConfig.from_json(st["model_config"]))
    model.load_state_dict(st[weights])
    return Checkpoint(model, st["record"], st.get("optimizer"), st.get("ema"), st.get("adversarial"),
                      dict(st.get("train_config") or {}))


def init_model(src: str) -> tuple[LearnedRateModel, dict]:
    """A model to continue: a learned-rate model file or shipped name (its weights and training record)."""
    from ..registry import load_codec
    codec = load_codec(src)
    model = LearnedRateModel(codec.model.cfg)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in codec.model.state_dict().items()})
    return model, dict(codec.training)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.train_v2", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--init-from", help="a learned-rate model (shipped name or file) to continue")
    src.add_argument("--resume", help="a checkpoint of this command (OUT/latest.pt)")
    p.add_argument("--out", help="checkpoints and log (default runs/v2; with --resume the checkpoint's folder)")
    p.add_argument("--export", metavar="MODEL.safetensors", help="after training, write a model file")
    p.add_argument("--name", default="ncodec-base", help="the exported model's name (default ncodec-base)")
    p.add_argument("--version", help="the exported model's version (its card)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="sizes for a machine (PRESETS); options given win")
    p.add_argument("--latent-dim", type=int, help="with --init-from: widen the model's latent to this many channels "
                   "first (training.widen: it codes as before until trained)")
    for f, v in asdict(V2Config()).items():
        kind = type(v)
        if kind is bool:
            p.add_argument("--" + f.replace("_", "-"), action=argparse.BooleanOptionalAction, default=None)
        else:
            p.add_argument("--" + f.replace("_", "-"), type=kind)
    a = p.parse_args(argv)
    if a.latent_dim is not None and a.resume:
        p.error("--latent-dim widens a model given by --init-from (a checkpoint keeps its own width)")
    given = {f: getattr(a, f) for f in asdict(V2Config()) if getattr(a, f) is not None}
    saved: dict = {}
    opt_state = ema_state = adv_state = None
    if a.resume:
        ck = load_checkpoint(a.resume)
        model, record, opt_state, ema_state, adv_state = ck.model, ck.record, ck.optimizer, ck.ema, ck.adversarial
        saved = {k: v for k, v in ck.train_config.items() if k in asdict(V2Config()) and k not in ("minutes", "steps")}
        a.out = a.out or str(Path(a.resume).parent)
        prev_card = json.loads((Path(a.resume).parent / "card.json").read_text())
        if Path(a.out).resolve() != Path(a.resume).parent.resolve():
            Path(a.out).mkdir(parents=True, exist_ok=True)
            (Path(a.out) / "card.json").write_text(json.dumps(prev_card))
    else:
        model, prev_card = init_model(a.init_from)
        if a.latent_dim is not None and a.latent_dim != model.cfg.latent_dim:
            from .widen import widen_latent
            model = widen_latent(model, a.latent_dim)
        record = {"steps": 0, "minutes": 0.0}
        a.out = a.out or "runs/v2"
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "card.json").write_text(json.dumps(prev_card))
    # the run's own settings (resumed), then the preset's, then the options given; minutes and steps: this
    # invocation's
    cfg = V2Config(**{**saved, **(PRESETS[a.preset] if a.preset else {}), **given})
    run = train(model, cfg, Path(a.out), record, opt_state, ema_state, adv_state)
    print(json.dumps({"trained_steps": run["steps"], "trained_minutes": round(run["minutes"], 2)}))
    if a.export:
        from .export_v2 import export_v2
        if run["ema"] is not None:
            model.load_state_dict(run["ema"])
        total = {"steps": record["steps"] + run["steps"], "minutes": record["minutes"] + run["minutes"],
                 "gpu_minutes": record.get("gpu_minutes", 0.0) + (run["minutes"] if run["gpu"] else 0.0)}
        export_v2(model, a.name, a.export, prev_card, total, a.version,
                  "python -m neuralcodec.training.train_v2 " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:])))


if __name__ == "__main__":
    sys.exit(run_command(main))
