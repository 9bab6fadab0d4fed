"""Training-step speed benchmark: `python -m neuralcodec.training.speed --data-root PACK [--init-from NAME]`.

Times real training steps (the Trainer's own train_step on batches from the data) in float32 and with bf16
autocast, after a few warm-up steps, and prints seconds per step for each. The model starts from shipped
weights (`--init-from`, default the shipped model) so that the quantizer is in its trained state; nothing is
written. Measured figures only: run it on the machine you want to know about, alone.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import torch

from ..model import VideoCodecModel
from .train import TrainConfig, Trainer


def seconds_per_step(cfg: TrainConfig, init: VideoCodecModel | None, steps: int, warmup: int) -> float:
    """Mean wall time of `steps` training steps after `warmup` untimed ones, starting from init's weights."""
    trainer = Trainer(cfg, torch.device("cpu"))
    if init is not None:
        trainer.init_from(init)
    batches = trainer.batches()
    for _ in range(warmup):
        trainer.train_step(next(batches))
        trainer.step += 1
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(batches))
        trainer.step += 1
    return (time.perf_counter() - t0) / steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.speed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, help="pack file or prepared data folder")
    p.add_argument("--init-from", default="ncodec-base", help="shipped model name or file ('' = fresh model)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per variant (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    init = None
    if a.init_from:
        from ..registry import load_codec
        init = load_codec(a.init_from).model      # loaded once, copied into each variant's trainer
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(data_root=a.data_root, out_dir=out, batch_size=a.batch_size, crop=a.crop,
                          steps=10 ** 6, gan_start=10 ** 6)
        if init is not None:
            cfg = dataclasses.replace(cfg, model=init.cfg)
        print(f"training step, batch {a.batch_size} of {cfg.clip_len}x{a.crop}x{a.crop}, "
              f"{torch.get_num_threads()} threads, {a.steps} steps after {a.warmup} warm-up:")
        res = {}
        for name, bf16 in (("float32", False), ("bf16 autocast", True)):
            res[name] = seconds_per_step(dataclasses.replace(cfg, bf16=bf16), init, a.steps, a.warmup)
            print(f"  {name:14s} {res[name]:.3f} s/step ({1 / res[name]:.2f} steps/s)", flush=True)
        print(f"  bf16 speed-up   {res['float32'] / res['bf16 autocast']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
