"""Turn a training run into a shipped model: EMA weights (fp16), frozen CDF tables, config, model card, sha256.

`python -m neuralcodec.training.export runs/x/latest.pt -o model.safetensors` (or `train ... --export FILE`).
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import numpy as np
import torch

from ..coding import build_tables, motion_counts
from ..model import VideoCodecModel
from ..model.macs import decoder_macs_per_pixel
from ..registry import round_like_saved, save_model

CARD_VERSION = 2


def motion_statistics(model: VideoCodecModel, clips: torch.Tensor) -> np.ndarray:
    """Motion residual symbol counts of the encoder's search between consecutive frames of clips (B, T, 3, H, W)."""
    fields = []
    with torch.no_grad():
        for t in range(1, clips.shape[1]):
            mv = model.motion(clips[:, t].float().cpu(), clips[:, t - 1].float().cpu())
            fields.extend(m.numpy() for m in mv)
    return motion_counts(model.cfg, fields)


def export_model(model: VideoCodecModel, clips: torch.Tensor, out: str | Path, name: str, card: dict) -> str:
    """Freeze tables on the rounded weights and write the file; returns its sha256."""
    model = model.cpu().float().eval()
    model.autocast = False
    round_like_saved(model)
    build_tables(model, motion_statistics(model, clips))
    card = dict(card)
    card.update(name=name, card_version=CARD_VERSION,
                parameters=sum(p.numel() for p in model.parameters()),
                decoder_macs_per_pixel={k: round(v) for k, v in decoder_macs_per_pixel(model).items()},
                exported=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return save_model(model, name, out, card=card)


def export_trainer(trainer, out: str | Path, name: str) -> str:
    """Export a Trainer's EMA model with its cumulative history and learning curve."""
    import copy
    model = copy.deepcopy(trainer.ema).cpu()
    clips = trainer.train_ds.fixed_batch(16, seed=7).cpu()
    card = {"training": trainer.cumulative(), "learning_curve": trainer.curve,
            "train_config": __import__("json").loads(trainer.cfg.to_json())}
    digest = export_model(model, clips, out, name, card)
    size = Path(out).stat().st_size
    print(f"wrote {out}: {size / 1e6:.2f} MB, sha256 {digest}", file=sys.stderr)
    print(f'pin it in neuralcodec/registry.py: ModelEntry("{name}", "{Path(out).name}", "{digest}")', file=sys.stderr)
    return digest


def main(argv: list[str] | None = None) -> int:
    from .train import TrainConfig, Trainer
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.export", description=__doc__)
    p.add_argument("checkpoint")
    p.add_argument("-o", "--out", required=True, help="output .safetensors")
    p.add_argument("--name", default="ncodec-base")
    p.add_argument("--data", help="pack file (default: the one the run used)")
    a = p.parse_args(argv)
    state = torch.load(a.checkpoint, map_location="cpu", weights_only=True)
    cfg = TrainConfig.from_json(state["config"])
    if a.data:
        cfg.data = a.data
    cfg.device = "cpu"
    trainer = Trainer(cfg)
    trainer.load(a.checkpoint)
    export_trainer(trainer, a.out, a.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
