"""Training of model v2 (learned rate): `python -m neuralcodec.training.train_v2`.

Every step codes a batch of clips (an I-frame, then P-frames on their own reconstructions) at one quality per
clip, drawn uniformly over the model's qualities, and minimises bits per pixel + lambda_q x (MSE + w x (1 - MS-SSIM))
with lambda log-spaced over the qualities. The rate is the model's own estimate (the hyperprior's likelihoods,
through the integer-exact hyper-synthesis with straight-through rounding), the same probability model the coder
uses. Runs continue from a model file (`--init-from`, a shipped name or path), a checkpoint of this command
(`--resume`), and write checkpoints every few minutes; `--export` turns the last state into a model file with
frozen tables and the cumulative training record.

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
from pathlib import Path

import torch

from ..model import LearnedRateModel, ModelConfig
from ._command import run_command
from .losses import msssim


@dataclass
class V2Config:
    """One run's settings; saved in its checkpoints."""

    data_root: str = "data/train.ncpack"
    crop: int = 160
    batch_size: int = 5
    clip_len: int = 3
    lr: float = 1e-4               # transforms
    lr_new: float = 1e-3           # gains, hyperpriors
    lam_lo: float = 0.0001         # lambda of the lowest and highest quality (x 255^2 on MSE of [0, 1] images)
    lam_hi: float = 0.03
    w_msssim: float = 0.05
    minutes: float = 60.0
    steps: int = 0                 # stop after this many steps too (0: minutes only)
    ckpt_every_min: float = 5.0
    bf16: bool = True
    seed: int = 0
    device: str = "auto"           # auto: CUDA when there is one (the pack is decoded onto it), else CPU


PRESETS: dict[str, dict] = {       # sizes for a machine; options given on the command line win
    # crop 160: a multiple of the model's alignment (32) that keeps the 180-pixel-high sources (bigbuckbunny, the
    # procedural clips), which larger crops drop
    "gpu": {"batch_size": 48, "crop": 160, "clip_len": 4, "minutes": 8.0, "ckpt_every_min": 1.0, "lr": 2e-4},
}


PAUSE_S = 30.0   # a step that took longer than this was paused: it counts as this long


def lambdas(cfg: V2Config, qualities: int) -> torch.Tensor:
    return torch.logspace(math.log10(cfg.lam_lo), math.log10(cfg.lam_hi), qualities) * 255 ** 2


def train(model: LearnedRateModel, cfg: V2Config, out: Path, start: dict, opt_state: dict | None = None) -> dict:
    """Train in place for cfg.minutes; returns the run record {steps, minutes} added to `start`'s."""
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
    lams = lambdas(cfg, model.cfg.qualities).to(device)
    base = [p for n, p in model.named_parameters() if n.startswith(("i_", "p_"))]
    new = [p for n, p in model.named_parameters() if not n.startswith(("i_", "p_"))]
    opt = torch.optim.Adam([{"params": base, "lr": cfg.lr}, {"params": new, "lr": cfg.lr_new}])
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 3 + start.get("steps", 0))
    log = (out / "log.jsonl").open("a")
    steps, skipped, minutes, last = 0, 0, 0.0, time.time()
    next_ckpt = cfg.ckpt_every_min
    model.train()
    while True:
        now = time.time()
        minutes += min(now - last, PAUSE_S) / 60    # a process stopped (SIGSTOP) meanwhile: not training time
        last = now
        done = minutes >= cfg.minutes or 0 < cfg.steps <= steps
        if minutes >= next_ckpt or done:
            rec = {"steps": start.get("steps", 0) + steps, "minutes": start.get("minutes", 0.0) + minutes,
                   "gpu_minutes": start.get("gpu_minutes", 0.0) + (minutes if device.type == "cuda" else 0.0)}
            save_checkpoint(out / "latest.pt", model, cfg, rec, opt)
            next_ckpt += cfg.ckpt_every_min
        if done:
            model.cpu()
            return {"steps": steps, "minutes": minutes, "gpu": device.type == "cuda"}
        clip = ds.sample(cfg.batch_size, gen).contiguous()
        q = torch.randint(0, model.cfg.qualities, (cfg.batch_size,), generator=gen, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            xhat, bits = model(clip, q)
        xhat = xhat.float()
        mse = (xhat - clip).pow(2).mean((1, 2, 3, 4))
        bpp = bits / (clip.shape[1] * clip.shape[-1] * clip.shape[-2])
        dist = mse
        if cfg.w_msssim > 0:   # each clip's own MS-SSIM under its own lambda
            dist = mse + cfg.w_msssim * (1 - torch.stack([msssim(xhat[i], clip[i]) for i in range(len(q))]))
        loss = (bpp + lams[q] * dist).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if not torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)):
            skipped += 1      # a batch with a non-finite loss or gradient is not applied (counted in the log)
            if skipped > 100:
                raise FloatingPointError(f"over 100 non-finite batches by step {start.get('steps', 0) + steps}")
            continue
        opt.step()
        steps += 1
        if steps % 25 == 0:
            rec = {"step": start.get("steps", 0) + steps, "min": round(start.get("minutes", 0.0) + minutes, 2),
                   "loss": round(float(loss), 5), "bpp": round(float(bpp.mean()), 5),
                   "psnr": round(-10 * math.log10(float(mse.mean())), 3), "skipped": skipped}
            print(json.dumps(rec), flush=True)
            log.write(json.dumps(rec) + "\n")
            log.flush()


def save_checkpoint(path: Path, model: LearnedRateModel, cfg: V2Config, record: dict,
                    opt: torch.optim.Optimizer | None = None) -> None:
    from ..io import atomic_output
    with atomic_output(path, force=True) as tmp:
        torch.save({"model": model.state_dict(), "model_config": model.cfg.to_json(), "train_config": asdict(cfg),
                    "record": record, "optimizer": None if opt is None else opt.state_dict()}, tmp)


def load_checkpoint(path: str | Path) -> tuple[LearnedRateModel, dict, dict | None]:
    """(model, record {steps, minutes} since the run's init model, optimizer state or None)."""
    st = torch.load(path, map_location="cpu", weights_only=True)
    model = LearnedRateModel(ModelConfig.from_json(st["model_config"]))
    model.load_state_dict(st["model"])
    return model, st["record"], st.get("optimizer")


def init_model(src: str) -> tuple[LearnedRateModel, dict]:
    """A model to continue: a learned-rate model file or shipped name (its weights and training record)."""
    from ..registry import load_codec
    codec = load_codec(src)
    if not isinstance(codec.model, LearnedRateModel):
        raise ValueError(f"{src} is not a learned-rate model (use --from-transfer for the RVQ transforms)")
    model = LearnedRateModel(codec.model.cfg)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in codec.model.state_dict().items()})
    return model, dict(codec.training)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.train_v2", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--init-from", help="a learned-rate model (shipped name or file) to continue")
    src.add_argument("--resume", help="a checkpoint of this command (OUT/latest.pt)")
    p.add_argument("--out", default="runs/v2", help="checkpoints and log (default runs/v2)")
    p.add_argument("--export", metavar="MODEL.safetensors", help="after training, write a model file")
    p.add_argument("--name", default="ncodec-base", help="the exported model's name (default ncodec-base)")
    p.add_argument("--version", help="the exported model's version (its card)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="sizes for a machine (PRESETS); options given win")
    for f, v in asdict(V2Config()).items():
        kind = type(v)
        if kind is bool:
            p.add_argument("--" + f.replace("_", "-"), action=argparse.BooleanOptionalAction, default=None)
        else:
            p.add_argument("--" + f.replace("_", "-"), type=kind)
    a = p.parse_args(argv)
    given = {f: getattr(a, f) for f in asdict(V2Config()) if getattr(a, f) is not None}
    cfg = V2Config(**{**(PRESETS[a.preset] if a.preset else {}), **given})
    opt_state = None
    if a.resume:
        model, record, opt_state = load_checkpoint(a.resume)
        prev_card = json.loads((Path(a.resume).parent / "card.json").read_text())
    else:
        model, prev_card = init_model(a.init_from)
        record = {"steps": 0, "minutes": 0.0}
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / "card.json").write_text(json.dumps(prev_card))
    run = train(model, cfg, Path(a.out), record, opt_state)
    print(json.dumps({"trained_steps": run["steps"], "trained_minutes": round(run["minutes"], 2)}))
    if a.export:
        from .export_v2 import export_v2
        total = {"steps": record["steps"] + run["steps"], "minutes": record["minutes"] + run["minutes"],
                 "gpu_minutes": record.get("gpu_minutes", 0.0) + (run["minutes"] if run["gpu"] else 0.0)}
        export_v2(model, a.name, a.export, prev_card, total, a.version,
                  "python -m neuralcodec.training.train_v2 " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:])))


if __name__ == "__main__":
    sys.exit(run_command(main))
