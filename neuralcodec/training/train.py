"""Training entry point: `python -m neuralcodec.training.train` (single process, or under torchrun with DDP)."""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader
from tqdm import tqdm

from .losses import AdversarialLoss, distortion
from ..model import ModelConfig, VideoCodecModel
from ..io import atomic_output
from ..metrics import psnr_from_mse


@dataclass
class TrainConfig:
    """Everything a training run needs; saved inside every checkpoint."""

    data_root: str = "data/"         # a prepared folder, or a pack file (python -m neuralcodec.training.pack)
    out_dir: str = "runs/default"
    model: ModelConfig = field(default_factory=ModelConfig)
    crop: int = 128
    clip_len: int = 3                 # I-frame + (clip_len - 1) P-frames coded on their own reconstructions
    batch_size: int = 8
    steps: int = 4000
    warmup_steps: int = 300           # autoencoder without quantization, then k-means init of every stage
    kmeans_batches: int = 6
    lr: float = 3e-4
    lr_min: float = 3e-5
    min_stages: int = 1               # quantizer dropout: stages per sample drawn in [min_stages, num_stages]
    w_msssim: float = 0.2
    w_commit: float = 0.25
    w_latent_l1: float = 0.01         # rate proxy on P-frame latents
    gan_start: int = 2500             # GAN warm-up: no adversarial term before this step
    gan_weight: float = 0.1
    gan_feat_weight: float = 0.5
    disc_lr: float = 2e-4
    ckpt_every: int = 250
    log_every: int = 10
    val_every: int = 250
    seed: int = 0
    time_limit_min: float = 0.0       # stop after this many minutes of training (0: none); the learning rate then
    #                                   decays over whichever of steps and time runs out first
    num_workers: int = 0
    bf16: bool = True                 # bfloat16 autocast of the convolution stacks (quantizer, motion, losses fp32)
    weights: dict = field(default_factory=lambda: {"video": 0.4, "photo": 0.5, "procedural": 0.1})

    def to_json(self) -> str:
        d = asdict(self)
        d["model"] = json.loads(self.model.to_json())
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TrainConfig":
        d = json.loads(text)
        d["model"] = ModelConfig.from_json(json.dumps(d["model"]))
        return cls(**d)


# Sizes for one kind of machine, applied under the command line's own options (which win). "gpu": one H100-class
# GPU for the ten minutes or so of device time a session gets: the pack decoded onto the GPU (the trainer puts its
# data on the training device), bf16 autocast, large batches of 4-frame crops, the learning rate decaying over the
# time limit, checkpoints often enough to average the last few. The crop stays at 176 (1.16's): the pack's
# bigbuckbunny (a validation clip's source) and procedural clips are 180 pixels high, and a larger crop would leave
# them out. Not yet run on a GPU: the sizes are estimates (see the README's GPU recipe).
TRAIN_PRESETS: dict[str, dict] = {
    "gpu": {"batch_size": 64, "crop": 176, "clip_len": 4, "steps": 1_000_000, "time_limit_min": 8.0,
            "lr": 2e-4, "lr_min": 1e-5, "gan_start": 10**9, "ckpt_every": 250, "val_every": 10**9,
            "log_every": 50, "bf16": True},
}


def logged_elapsed(log: Path, step: int | None = None) -> float | None:
    """The last elapsed_s (wall seconds) of a run's log.csv, at or before `step` when given; None without one."""
    if not log.is_file():
        return None
    with log.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("elapsed_s") and (step is None or int(r["step"]) <= step)]
    return float(rows[-1]["elapsed_s"]) if rows else None


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def empirical_bpp(codes: torch.Tensor, n: int) -> float:
    """Bits per pixel of the first n stages of codes (B, S, h, w) under their own empirical distribution."""
    bits = 0.0
    for s in range(n):
        c = torch.bincount(codes[:, s].reshape(-1)).float()
        p = c[c > 0] / c.sum()
        bits += float(-(p * p.log2()).sum())
    return bits / 64.0


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR of a reconstruction x (clamped to [0, 1]) against y, for the training log."""
    return psnr_from_mse(float((x.clamp(0, 1) - y).pow(2).mean()), 1.0)


class Trainer:
    """Owns model, optimizers, data and the training loop."""

    def __init__(self, cfg: TrainConfig, device: torch.device):
        self.cfg, self.device = cfg, device
        torch.manual_seed(cfg.seed + _rank())
        random.seed(cfg.seed + _rank())
        np.random.seed(cfg.seed + _rank())
        self.model = VideoCodecModel(cfg.model).to(device).to(memory_format=torch.channels_last)
        self.adv = AdversarialLoss(cfg.gan_weight, cfg.gan_feat_weight, cfg.disc_lr, cfg.gan_start).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        self.step = 0
        self.elapsed = 0.0                 # wall seconds this run has trained, carried on through --resume
        self.vq_ready = False
        self.ddp = None
        if _world() > 1:
            ids = [device.index] if device.type == "cuda" else None
            self.ddp = DDP(self.model, device_ids=ids, broadcast_buffers=False, find_unused_parameters=True)
        self.pack = Path(cfg.data_root).is_file()
        if self.pack:   # one pack file, decoded once onto the device; batches drawn there
            from .data import PackDataset
            self.train_ds = PackDataset(cfg.data_root, "train", cfg.clip_len, cfg.crop, seed=cfg.seed * 1000 + _rank(),
                                        device=device, weights=cfg.weights)
            self.val_ds = PackDataset(cfg.data_root, "val", cfg.clip_len, cfg.crop, seed=12345, device=device,
                                      weights=cfg.weights)
        else:
            from .data import ClipDataset
            self.train_ds = ClipDataset(cfg.data_root, "train", cfg.clip_len, cfg.crop,
                                        seed=cfg.seed * 1000 + _rank(), weights=cfg.weights)
            self.val_ds = ClipDataset(cfg.data_root, "val", cfg.clip_len, cfg.crop, seed=12345, weights=cfg.weights)
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)

    # checkpoints ------------------------------------------------------------------
    def save(self, path: Path | None = None) -> Path:
        path = path or self.out / f"ckpt_{self.step:06d}.pt"
        state = {"config": self.cfg.to_json(), "step": self.step, "vq_ready": self.vq_ready, "elapsed_s": self.elapsed,
                 "model": self.model.state_dict(), "opt": self.opt.state_dict(),
                 "adv": self.adv.state_dict(), "adv_opt": self.adv.optimizer.state_dict()}
        for target in (path, self.out / "latest.pt"):
            with atomic_output(target, force=True) as tmp:
                torch.save(state, tmp)
        return path

    def init_from(self, model: VideoCodecModel) -> None:
        """Start from shipped weights (initialised codebooks included); the frozen tables are rebuilt at export."""
        state = {k: v for k, v in model.state_dict().items() if not k.endswith("entropy.cdf")}
        self.model.load_state_dict(state, strict=False)   # copies into this model's (channels_last) parameters
        self.vq_ready = True

    def load(self, path: str | Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.adv.load_state_dict(state["adv"])
        self.adv.optimizer.load_state_dict(state["adv_opt"])
        self.step, self.vq_ready = int(state["step"]), bool(state["vq_ready"])
        if "elapsed_s" in state:
            self.elapsed = float(state["elapsed_s"])
        else:                              # checkpoints written before they recorded it
            self.elapsed = logged_elapsed(self.out / "log.csv", self.step) or 0.0

    def out_of_time(self) -> bool:
        """Whether the run's time limit (if any) is spent; every process of a DDP run decides the same."""
        if self.cfg.time_limit_min <= 0:
            return False
        spent = torch.tensor(float(self.elapsed >= 60 * self.cfg.time_limit_min), device=self.device)
        if _world() > 1:
            dist.broadcast(spent, 0)   # rank 0's clock decides for all, so no process waits on another forever
        return bool(spent)

    # data -----------------------------------------------------------------------
    def batches(self):
        if self.pack:
            gen = torch.Generator().manual_seed(self.cfg.seed * 1000 + _rank() + self.step)
            while True:
                yield self.train_ds.sample(self.cfg.batch_size, gen).contiguous()
        loader = DataLoader(self.train_ds, batch_size=self.cfg.batch_size, shuffle=True,
                            num_workers=self.cfg.num_workers, drop_last=True,
                            persistent_workers=self.cfg.num_workers > 0)
        epoch = 0
        while True:
            if hasattr(self.train_ds, "set_epoch"):
                self.train_ds.set_epoch(epoch)
            for batch in loader:
                yield batch.to(self.device).contiguous()
            epoch += 1

    # phases ---------------------------------------------------------------------
    @torch.no_grad()
    def init_codebooks(self, batches) -> dict[str, list[float]]:
        """k-means on the latents each RVQ actually sees (I latents, and P latents of the warm-up model)."""
        self.model.eval()
        zi, zp = [], []
        for _ in range(self.cfg.kmeans_batches):
            out = self.model(next(batches), bypass_vq=True)
            zi.append(out.latents[0].cpu())
            zp.extend(z.cpu() for z in out.latents[1:])
        self.model.train()
        g = torch.Generator().manual_seed(self.cfg.seed)
        res = {"i": self.model.i_vq.init_kmeans(torch.cat(zi), generator=g),
               "p": self.model.p_vq.init_kmeans(torch.cat(zp), generator=g)}
        self.model.to(self.device)
        self.vq_ready = True
        return res

    def progress(self, step: int | None = None) -> float:
        """How far the run is, 0..1: its steps, or its time limit if that comes first."""
        c = self.cfg
        t = (self.step if step is None else step) / max(1, c.steps)
        if c.time_limit_min > 0:
            t = max(t, self.elapsed / (60 * c.time_limit_min))
        return min(1.0, t)

    def lr_at(self, step: int) -> float:
        c = self.cfg
        if step < 100:
            return c.lr * (step + 1) / 100
        return c.lr_min + 0.5 * (c.lr - c.lr_min) * (1 + math.cos(math.pi * self.progress(step)))

    def train_step(self, clip: torch.Tensor) -> dict[str, float]:
        c, m = self.cfg, self.model
        b, t = clip.shape[:2]
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(self.step)
        n = torch.randint(c.min_stages, c.model.num_stages + 1, (b,))
        net = self.ddp or m
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=c.bf16):
            out = net(clip, n, bypass_vq=not self.vq_ready)
        x = clip.flatten(0, 1)
        xhat = out.recon.flatten(0, 1)
        rec, logs = distortion(x, xhat, c.w_msssim)
        loss = rec + c.w_commit * out.commit_loss + c.w_latent_l1 * out.latent_l1
        if self.vq_ready and self.adv.active(self.step):
            g_loss, glogs = self.adv(xhat, x, rec, m.p_dec.out[0].weight, self.step)
            loss = loss + g_loss
            logs.update(glogs)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        self.opt.step()
        if self.vq_ready and self.adv.active(self.step):
            logs.update(self.adv.train_adv(xhat, x))
        logs.update(loss=float(loss), commit=float(out.commit_loss), latent_l1=float(out.latent_l1),
                    psnr=psnr(xhat.detach(), x), psnr_i=psnr(out.recon[:, 0].detach(), clip[:, 0]),
                    lr=self.lr_at(self.step))
        if self.vq_ready:
            logs.update({k: v for k, v in out.metrics.items()})
        return logs

    @torch.no_grad()
    def validate(self, n_batches: int = 2) -> dict[str, float]:
        """PSNR and empirical bits per pixel of I and P frames for every number of stages."""
        self.model.eval()
        res: dict[str, float] = {}
        if self.pack:
            clips = list(self.val_ds.fixed_batch(8 * n_batches, seed=12345).split(8))
        else:
            clips = [torch.stack([self.val_ds[i * 8 + j] for j in range(8)]).to(self.device) for i in range(n_batches)]
        stage_counts = range(1, self.cfg.model.num_stages + 1) if self.vq_ready else [0]
        for n in stage_counts:
            pi, pp, bi, bp = [], [], [], []
            for clip in clips:
                out = self.model(clip, n if n else None, bypass_vq=not self.vq_ready)
                pi.append(psnr(out.recon[:, 0], clip[:, 0]))
                pp.append(psnr(out.recon[:, 1:], clip[:, 1:]))
                if n:
                    bi.append(empirical_bpp(out.codes[0], n))
                    bp.append(float(np.mean([empirical_bpp(cc, n) for cc in out.codes[1:]])))
            res[f"val_psnr_i_{n}"] = float(np.mean(pi))
            res[f"val_psnr_p_{n}"] = float(np.mean(pp))
            if n:
                res[f"val_bpp_i_{n}"] = float(np.mean(bi))
                res[f"val_bpp_p_{n}"] = float(np.mean(bp))
        self.model.train()
        return res

    def run(self) -> None:
        c = self.cfg
        batches = self.batches()
        log_path = self.out / "log.csv"
        jsonl = (self.out / "log.jsonl").open("a")
        main = _rank() == 0
        bar = tqdm(total=c.steps, initial=self.step, disable=not main, dynamic_ncols=True)
        t0 = time.time() - self.elapsed
        while self.step < c.steps:
            if not self.vq_ready and self.step >= c.warmup_steps:
                energies = self.init_codebooks(batches)
                if main:
                    jsonl.write(json.dumps({"step": self.step, "kmeans_residual_energy": energies}) + "\n")
                    jsonl.flush()
            logs = self.train_step(next(batches))
            self.step += 1
            self.elapsed = time.time() - t0
            if main and (self.step % c.log_every == 0 or self.step == 1):
                logs["step"], logs["elapsed_s"] = self.step, round(self.elapsed, 1)
                jsonl.write(json.dumps(logs) + "\n")
                jsonl.flush()
                new = not log_path.exists()
                with log_path.open("a", newline="") as f:
                    keys = ["step", "elapsed_s", "loss", "psnr", "psnr_i", "l1", "mse", "msssim", "commit",
                            "latent_l1", "g_loss", "d_loss", "d_weight", "lr"]
                    w = csv.DictWriter(f, keys, extrasaction="ignore")
                    if new:
                        w.writeheader()
                    w.writerow(logs)
                bar.set_postfix(loss=f"{logs['loss']:.4f}", psnr=f"{logs['psnr']:.2f}")
            bar.update(1)
            if main and self.step % c.val_every == 0:
                v = self.validate()
                v["step"] = self.step
                jsonl.write(json.dumps(v) + "\n")
                jsonl.flush()
            stop = self.out_of_time()         # on every process: a collective under DDP
            if main and (self.step % c.ckpt_every == 0 or self.step == c.steps or stop):
                self.save()
            if stop:
                break
        bar.close()
        jsonl.close()


def _parse(argv: list[str] | None) -> tuple[TrainConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.train", description=__doc__)
    p.add_argument("--preset", choices=sorted(TRAIN_PRESETS),
                   help="sizes for a machine (TRAIN_PRESETS), under the options given here, which win")
    p.add_argument("--export", metavar="MODEL.safetensors",
                   help="at the end, average the last --average-last checkpoints (OUT_DIR/avg.pt) and export them "
                        "as a model file, the --init-from model's levels and training record carried on")
    p.add_argument("--average-last", type=int, default=4, help="checkpoints averaged for --export (default 4)")
    p.add_argument("--version", help="the exported model's version (its card)")
    p.add_argument("--resume", help="checkpoint to resume from ('auto' = OUT_DIR/latest.pt if present)")
    p.add_argument("--config", help="JSON file with TrainConfig fields")
    p.add_argument("--model-config", help="JSON with ModelConfig fields, or 'tiny'")
    p.add_argument("--init-from", help="start from a shipped model (name) or model file: its weights and codebooks "
                                       "(a warm restart: fresh optimizer, this run's schedule)")
    for f in dataclasses.fields(TrainConfig):
        if f.type in ("int", "float", "str"):
            p.add_argument("--" + f.name.replace("_", "-"), type={"int": int, "float": float, "str": str}[f.type])
        elif f.type == "bool":
            p.add_argument("--" + f.name.replace("_", "-"), action=argparse.BooleanOptionalAction, default=None)
    a = p.parse_args(argv)
    if a.export and not a.init_from:
        p.error("--export needs --init-from (the model whose levels and training record the export carries on)")
    if a.average_last < 1:
        p.error("--average-last must be at least 1")
    cfg = TrainConfig.from_json(Path(a.config).read_text()) if a.config else TrainConfig()
    if a.preset:
        cfg = dataclasses.replace(cfg, **TRAIN_PRESETS[a.preset])
    over = {f.name: getattr(a, f.name) for f in dataclasses.fields(TrainConfig)
            if f.type in ("int", "float", "str", "bool") and getattr(a, f.name) is not None}
    cfg = dataclasses.replace(cfg, **over)
    if a.model_config == "tiny":
        from ..model import TINY
        cfg = dataclasses.replace(cfg, model=TINY)
    elif a.model_config:
        cfg = dataclasses.replace(cfg, model=ModelConfig.from_json(Path(a.model_config).read_text()))
    return cfg, a


def export_run(trainer: "Trainer", init_from: str, name: str, out: str, last: int, version: str | None,
               command: str) -> Path:
    """Average the run's last checkpoints into OUT_DIR/avg.pt and export it (tables counted on the run's own
    training data) as `name`, with the levels and training record of the init model carried on and this run's hours
    as GPU hours when it ran on a GPU."""
    from .average import average_checkpoints, last_checkpoints
    from .export import export_checkpoint, print_exported
    avg = trainer.out / "avg.pt"
    with atomic_output(avg, force=True) as tmp:
        torch.save(average_checkpoints(last_checkpoints(trainer.out, last)), tmp)
    digest, card, model = export_checkpoint(avg, out, name=name, data_root=trainer.cfg.data_root, clips=16,
                                            crop=min(192, trainer.cfg.crop), version=version, history=init_from,
                                            command=command, gpu=trainer.device.type == "cuda")
    print_exported(name, out, card, digest, model)
    return avg


def main(argv: list[str] | None = None) -> None:
    cfg, a = _parse(argv)
    resume, init_from = a.resume, a.init_from
    init_model = init_name = None
    if init_from:
        from ..registry import load_codec
        init_codec = load_codec(init_from)
        init_model, init_name = init_codec.model, init_codec.name
        cfg = dataclasses.replace(cfg, model=init_model.cfg)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True      # fixed crop sizes: let cuDNN pick its fastest convolutions
    else:
        device = torch.device("cpu")
    trainer = Trainer(cfg, device)
    if resume == "auto":
        resume = str(trainer.out / "latest.pt") if (trainer.out / "latest.pt").exists() else None
    if resume:
        trainer.load(resume)
    elif init_model is not None:
        trainer.init_from(init_model)
    if _rank() == 0:
        (trainer.out / "config.json").write_text(cfg.to_json())
    trainer.run()
    rank = _rank()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    if a.export and rank == 0:
        import shlex
        import sys
        command = "python -m neuralcodec.training.train " + shlex.join(sys.argv[1:] if argv is None else argv)
        export_run(trainer, init_from, init_name, a.export, a.average_last, a.version, command)


if __name__ == "__main__":
    main()
