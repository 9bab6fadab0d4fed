"""Training entry point: `python -m neuralcodec.training.train` (rate + lambda x distortion, one model for every rate).

Runs accumulate: `--init-from ncodec-base` (a shipped name or a model file) starts from shipped weights and
inherits their training history (steps, CPU and GPU hours, commands); `--resume` continues a checkpoint;
checkpoints are written every few minutes; `--export` writes a shippable model file at the end.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..model import ModelConfig, TINY, VideoCodecModel
from ._malloc import keep_freed_memory
from .losses import AdversarialLoss, distortion


@dataclass
class TrainConfig:
    """Everything a training run needs; saved inside every checkpoint."""

    data: str = "data/train.ncpack"    # a pack file (python -m neuralcodec.training.pack)
    out_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    # Crops of at least 256: the side latent z is at 1/64 resolution, so a 128 crop gives a 2x2 z whose every
    # position sits on the border; a model trained so codes full frames at several times the rate (measured).
    crop: int = 256
    clip_len: int = 3                 # I-frame + (clip_len - 1) P-frames coded on their own reconstructions
    batch_size: int = 2
    steps: int = 20000                # total steps of this run's schedule (counted from the run's first step)
    time_limit_min: float = 0.0       # stop (checkpoint, export) after this much wall time; 0 = no limit
    lr: float = 3e-4
    lr_warmup: int = 200              # linear warm-up (also on a restart from shipped weights)
    lr_decay_frac: float = 0.3        # cosine decay to lr_min over the last fraction of the steps (or time)
    lr_min: float = 1e-5
    lambda_min: float = 0.0005        # rate-distortion lambda of the lowest quality (MSE on 8-bit scale)
    lambda_max: float = 0.05          # ... of the highest; log-spaced in between
    w_msssim: float = 0.02            # distortion = MSE + w_msssim * (1 - MS-SSIM)
    ema_decay: float = 0.999          # weights averaged for validation and export
    bf16: bool = True                 # bf16 autocast of the convolutional transforms
    freeze_intra: bool = False        # train only the P-frame coder (the I-frame coder fixed, without gradients)
    gan_start: int = 10 ** 9          # GAN warm-up: no adversarial term before this step
    gan_weight: float = 0.05
    gan_feat_weight: float = 0.5
    disc_lr: float = 2e-4
    ckpt_minutes: float = 5.0
    log_every: int = 50
    val_every: int = 1000
    val_clips: int = 8
    val_crop: int = 256
    seed: int = 0
    device: str = "auto"

    def to_json(self) -> str:
        d = asdict(self)
        d["model"] = json.loads(self.model.to_json())
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        d = json.loads(text)
        d["model"] = ModelConfig.from_json(json.dumps(d["model"]))
        return cls(**d)


# Presets: sizes for a machine. `gpu`: about 25 minutes of one H100; `gpu-tiny`: the same code path, tiny, for tests.
PRESETS = {
    "cpu": {},
    "gpu": {"batch_size": 32, "crop": 256, "steps": 40000, "time_limit_min": 24.0, "lr": 4e-4,
            "val_every": 2000, "ckpt_minutes": 3.0, "device": "cuda", "val_clips": 16},
    "gpu-tiny": {"batch_size": 2, "crop": 64, "steps": 6, "val_every": 3, "val_clips": 2, "val_crop": 64,
                 "log_every": 1, "lr_warmup": 2, "model": TINY},
}


# What a run started with --init-from takes from the shipped model's training config unless given explicitly
INHERITED = ("lambda_min", "lambda_max", "w_msssim")


def lambdas(cfg: TrainConfig) -> torch.Tensor:
    """Lambda of each quality index (log-spaced)."""
    q = cfg.model.num_qualities
    return torch.exp(torch.linspace(math.log(cfg.lambda_min), math.log(cfg.lambda_max), q))


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1] (x is clamped)."""
    mse = float((x.clamp(0, 1) - y).pow(2).mean())
    return 10 * math.log10(1 / max(mse, 1e-10))


def interp_at(bpp: list[float], val: list[float], target: float) -> float | None:
    """Quality at a target bpp, linear in log(bpp) between measured points; None outside their range."""
    pts = sorted(zip(bpp, val))
    for (b0, v0), (b1, v1) in zip(pts, pts[1:]):
        if b0 <= target <= b1 and b1 > b0:
            t = (math.log(target) - math.log(b0)) / (math.log(b1) - math.log(b0))
            return v0 + t * (v1 - v0)
    return None


class Trainer:
    """Owns the model, its EMA, the optimizers, the data and the loop."""

    def __init__(self, cfg: TrainConfig, history: dict | None = None):
        self.cfg = cfg
        dev = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(dev)
        torch.manual_seed(cfg.seed)
        self.gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        self.model = VideoCodecModel(cfg.model).to(self.device).to(memory_format=torch.channels_last)
        self.model.autocast = cfg.bf16
        if cfg.freeze_intra:
            for name, p in self.model.named_parameters():
                if name.startswith("i_"):
                    p.requires_grad_(False)
        self.ema = copy.deepcopy(self.model).eval()
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.adv = AdversarialLoss(cfg.gan_weight, cfg.gan_feat_weight, cfg.disc_lr, cfg.gan_start).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.step = 0           # steps of this run
        self.elapsed = 0.0      # wall seconds of this run (across resumes)
        self.history = dict(history or {"steps": 0, "cpu_hours": 0.0, "gpu_hours": 0.0, "commands": []})
        self.curve: list[dict] = []
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        from .data import PackDataset
        self.train_ds = PackDataset(cfg.data, "train", cfg.clip_len, cfg.crop, seed=cfg.seed, device=self.device)
        self.val_ds = PackDataset(cfg.data, "val", cfg.clip_len, cfg.val_crop, seed=12345, device=self.device)
        self.val_batch = self.val_ds.fixed_batch(cfg.val_clips, seed=12345)
        self.lams = lambdas(cfg).to(self.device)

    # weights ----------------------------------------------------------------------------------------------------
    def init_from(self, model: VideoCodecModel) -> None:
        """Start from shipped weights (model and EMA); the optimizer starts fresh (a warm restart)."""
        if model.cfg != self.cfg.model:
            raise ValueError("--init-from model has another config than this run")
        state = {k: v for k, v in model.state_dict().items() if k != "cdf"}
        self.model.load_state_dict(state, strict=False)
        self.ema.load_state_dict(state, strict=False)

    def save(self) -> Path:
        state = {"config": self.cfg.to_json(), "step": self.step, "elapsed": self.elapsed,
                 "history": json.dumps(self.history), "curve": json.dumps(self.curve),
                 "model": self.model.state_dict(), "ema": self.ema.state_dict(), "opt": self.opt.state_dict(),
                 "adv": self.adv.state_dict(), "adv_opt": self.adv.optimizer.state_dict(),
                 "gen": self.gen.get_state()}
        from ..io import atomic_output
        path = self.out / "latest.pt"
        with atomic_output(path, force=True) as tmp:   # replaces our previous checkpoint, nothing else
            torch.save(state, tmp)
        return path

    def load(self, path: str | Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.adv.load_state_dict(state["adv"])
        self.adv.optimizer.load_state_dict(state["adv_opt"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        if "gen" in state:   # the data sampler continues where it stopped instead of repeating its batches
            self.gen.set_state(state["gen"].cpu())
        self.history = json.loads(state["history"])
        self.curve = json.loads(state["curve"])

    def cumulative(self) -> dict:
        """Training history including this run so far."""
        h = dict(self.history)
        hours = self.elapsed / 3600
        h["steps"] = int(h.get("steps", 0)) + self.step
        key = "gpu_hours" if self.device.type == "cuda" else "cpu_hours"
        h[key] = round(float(h.get(key, 0.0)) + hours, 4)
        return h

    # schedule ---------------------------------------------------------------------------------------------------
    def progress(self) -> float:
        c = self.cfg
        p = self.step / max(1, c.steps)
        if c.time_limit_min > 0:
            p = max(p, self.elapsed / (60 * c.time_limit_min))
        return min(1.0, p)

    def lr_now(self) -> float:
        c = self.cfg
        if self.step < c.lr_warmup:
            return c.lr * (self.step + 1) / c.lr_warmup
        start = 1 - c.lr_decay_frac
        p = self.progress()
        if p <= start or c.lr_decay_frac <= 0:
            return c.lr
        t = (p - start) / c.lr_decay_frac
        return c.lr_min + 0.5 * (c.lr - c.lr_min) * (1 + math.cos(math.pi * t))

    # steps ------------------------------------------------------------------------------------------------------
    def train_step(self, clip: torch.Tensor) -> dict[str, float]:
        c, m = self.cfg, self.model
        b, t, _, h, w = clip.shape
        for g in self.opt.param_groups:
            g["lr"] = self.lr_now()
        q = torch.randint(0, c.model.num_qualities, (b,), generator=self.gen).to(self.device)
        out = m(clip, q, intra_grad=not c.freeze_intra)
        bpp = (out.bits_y + out.bits_z).sum(1) / (t * h * w)                  # (B,)
        x, xhat = clip.flatten(0, 1), out.recon.flatten(0, 1)
        d, logs = distortion(x, xhat, c.w_msssim)
        d = d.view(b, t).mean(1)
        lam = self.lams[q] * 255 ** 2
        loss = (bpp + lam * d).mean()
        gan_on = self.adv.active(self.step)
        if gan_on:
            g_loss, glogs = self.adv(xhat, x, (lam * d).mean(), m.p_dec.out[0].weight, self.step)
            loss = loss + g_loss
            logs.update(glogs)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if c.freeze_intra:   # the I-frame rows of the gain tables stay as they are
            for g in (m.log_gain, m.log_inv_gain):
                g.grad[0] = 0
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        self.opt.step()
        if gan_on:
            logs.update(self.adv.train_adv(xhat, x))
        with torch.no_grad():
            decay = min(c.ema_decay, (1 + self.step) / (10 + self.step))
            for pe, pm in zip(self.ema.parameters(), m.parameters()):
                pe.lerp_(pm, 1 - decay)
        logs.update(loss=float(loss), bpp=float(bpp.mean()), psnr=psnr(xhat.detach(), x), lr=self.lr_now())
        return logs

    @torch.no_grad()
    def validate(self, qualities: list[int] | None = None) -> dict:
        """Real integer path of the EMA model on the fixed validation clips: bpp, PSNR, MS-SSIM per quality."""
        from .losses import msssim
        q_all = self.cfg.model.num_qualities
        qualities = qualities or sorted({0, q_all // 4, q_all // 2, 3 * q_all // 4, q_all - 1})
        clip = self.val_batch
        b, t, _, h, w = clip.shape
        pts = []
        for qi in qualities:
            out = self.ema(clip, torch.full((b,), qi, dtype=torch.long, device=self.device))
            xhat = out.recon.clamp(0, 1)
            pts.append({"q": qi, "bpp": float((out.bits_y + out.bits_z).sum() / (b * t * h * w)),
                        "bpp_i": float((out.bits_y + out.bits_z)[:, 0].sum() / (b * h * w)),
                        "psnr": psnr(xhat, clip),
                        "msssim": float(msssim(xhat.flatten(0, 1), clip.flatten(0, 1)))})
        res = {"points": pts}
        for target in (0.05, 0.1, 0.2, 0.4):
            v = interp_at([p["bpp"] for p in pts], [p["psnr"] for p in pts], target)
            if v is not None:
                res[f"psnr_at_{target}"] = round(v, 3)
        return res

    def run(self) -> None:
        c = self.cfg
        log = (self.out / "log.jsonl").open("a")
        t_last = time.time()
        last_ckpt = time.time()
        while self.step < c.steps and (c.time_limit_min <= 0 or self.elapsed < 60 * c.time_limit_min):
            clip = self.train_ds.sample(c.batch_size, self.gen).contiguous()
            logs = self.train_step(clip)
            self.step += 1
            now = time.time()
            self.elapsed += now - t_last
            t_last = now
            if self.step % c.log_every == 0 or self.step == 1:
                logs.update(step=self.step, elapsed_s=round(self.elapsed, 1))
                log.write(json.dumps(logs) + "\n")
                log.flush()
                print(f"step {self.step} loss {logs['loss']:.4f} bpp {logs['bpp']:.4f} psnr {logs['psnr']:.2f} "
                      f"lr {logs['lr']:.2e} ({self.elapsed / self.step:.3f} s/step)", file=sys.stderr, flush=True)
            if self.step % c.val_every == 0:
                self._validate_and_log(log)
                t_last = time.time()
            if time.time() - last_ckpt > 60 * c.ckpt_minutes:
                self.save()
                last_ckpt = t_last = time.time()
        if not self.curve or self.curve[-1]["step"] != self.step:
            self._validate_and_log(log)
        self.save()
        log.close()

    def _validate_and_log(self, log) -> None:
        v = self.validate()
        h = self.cumulative()
        entry = {"step": self.step, "cumulative_steps": h["steps"], "cpu_hours": h.get("cpu_hours", 0.0),
                 "gpu_hours": h.get("gpu_hours", 0.0), **v}
        self.curve.append(entry)
        log.write(json.dumps({"val": entry}) + "\n")
        log.flush()
        summary = {k: v for k, v in entry.items() if k.startswith("psnr_at")}
        print(f"validation at step {self.step}: {summary}", file=sys.stderr, flush=True)


def _parse(argv: list[str] | None) -> tuple[TrainConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="sizes for the machine (default cpu)")
    p.add_argument("--resume", help="checkpoint to resume ('auto' = OUT_DIR/latest.pt if present)")
    p.add_argument("--init-from", help="start from a shipped model (name) or model file, inheriting its history")
    p.add_argument("--export", metavar="FILE", help="write a shippable model file at the end")
    p.add_argument("--name", default="ncodec-base", help="model name for --export")
    p.add_argument("--model-config", help="JSON file with ModelConfig fields, or 'tiny'")
    for f in dataclasses.fields(TrainConfig):
        kind = {"int": int, "float": float, "str": str}.get(f.type)
        if kind:
            p.add_argument("--" + f.name.replace("_", "-"), type=kind)
        elif f.type == "bool":
            p.add_argument("--" + f.name.replace("_", "-"), type=lambda s: s.lower() in ("1", "true", "yes", "on"))
    a = p.parse_args(argv)
    cfg = dataclasses.replace(TrainConfig(), **PRESETS[a.preset])
    over = {f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig)
            if hasattr(a, f.name) and getattr(a, f.name) is not None}
    cfg = dataclasses.replace(cfg, **over)
    a.explicit = set(over)
    if a.model_config == "tiny":
        cfg = dataclasses.replace(cfg, model=TINY)
    elif a.model_config:
        cfg = dataclasses.replace(cfg, model=ModelConfig.from_json(Path(a.model_config).read_text()))
    return cfg, a


def main(argv: list[str] | None = None) -> int:
    cfg, a = _parse(argv)
    keep_freed_memory()
    command = "python -m neuralcodec.training.train " + shlex.join(sys.argv[1:] if argv is None else argv)
    history = None
    init_model = None
    if a.init_from:
        from ..registry import load_codec
        codec = load_codec(a.init_from)
        init_model = codec.model
        cfg = dataclasses.replace(cfg, model=init_model.cfg)
        # the qualities mean what they meant in training: keep the shipped lambdas unless asked otherwise
        shipped = codec.card.get("train_config", {})
        keep = {k: shipped[k] for k in INHERITED if k in shipped and k not in a.explicit}
        cfg = dataclasses.replace(cfg, **keep)
        history = dict(codec.card.get("training", {}))
        history.setdefault("commands", [])
    trainer = Trainer(cfg, history)
    resume = a.resume
    if resume == "auto":
        resume = str(trainer.out / "latest.pt") if (trainer.out / "latest.pt").exists() else None
    if resume:
        trainer.load(resume)
    elif init_model is not None:
        trainer.init_from(init_model)
    if command not in trainer.history.setdefault("commands", []):
        trainer.history["commands"] = trainer.history["commands"] + [command]
    (trainer.out / "config.json").write_text(cfg.to_json())
    trainer.run()
    if a.export:
        from .export import export_trainer
        export_trainer(trainer, a.export, a.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
