"""Export of model v2: freeze the integer tables and write a model file with the cumulative training record.

`python -m neuralcodec.training.export_v2 CHECKPOINT -o MODEL.safetensors --version V` (a train_v2 checkpoint:
its weight average when the run kept one, `--weights model` for the trained weights themselves). Version 2.0 was
built from the experiment that put the learned rate on the RVQ model's transforms (`--from-transfer`, removed
with the RVQ model; commit 15da05e has it).

No statistics pass: the z tables come from the factorized priors and the y tables from the scale table, so an
export takes seconds. The motion tables (the motion search is the RVQ model's, unchanged) are the ones the model
carries (it continued an exported model), else the shipped model's.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..coding import freeze_tables, motion_cdf_rows
from ..model import LearnedRateModel

DEFAULT_MOTION_TABLES = "ncodec-base"


def motion_tables(src: str) -> list:
    """The motion tables (CDF rows) of a model (name or file)."""
    from ..registry import MODELS_DIR, REGISTRY, read_model
    path = MODELS_DIR / REGISTRY[src].filename if src in REGISTRY else Path(src)
    return motion_cdf_rows(read_model(path)[0])


def carry_on(prev: dict, version: str | None, steps: int = 0, cpu_hours: float = 0.0, gpu_hours: float = 0.0,
             command: str | None = None) -> dict:
    """A training record (registry.CARD_FIELDS): prev's (the record of the model a run continued) with this run's
    steps and hours added and its command appended."""
    start = {"steps": 0, "cpu_hours": 0.0, "gpu_hours": 0.0, "commands": []}
    prev = {k: (prev.get(k) if prev.get(k) is not None else start[k]) for k in start}
    return {"version": version, "steps": prev["steps"] + steps, "cpu_hours": prev["cpu_hours"] + cpu_hours,
            "gpu_hours": prev["gpu_hours"] + gpu_hours,
            "commands": list(prev["commands"]) + ([command] if command else [])}


def print_exported(name: str, out: str | Path, card: dict, digest: str, model: LearnedRateModel) -> None:
    size = Path(out).stat().st_size
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: {size / 1e6:.2f} MB, {n_params / 1e6:.2f} M parameters; {card['steps']} steps, "
          f"{card['cpu_hours']:.2f} CPU hours, {card['gpu_hours']:.2f} GPU hours of training")
    print(f"sha256 {digest}")
    print(f'pin it in neuralcodec/registry.py: ModelEntry("{name}", "{Path(out).name}", "{digest}")')


def export_v2(model: LearnedRateModel, name: str, out: str | Path, prev_card: dict, run: dict,
              version: str | None, command: str | None, motion_from: str = DEFAULT_MOTION_TABLES) -> str:
    """Freeze the tables of a trained model and write it with prev_card's record + run ({steps, minutes and, of
    those, gpu_minutes})."""
    from ..registry import save_model
    model = model.float().eval()
    if model.entropy.cdf.is_floating_point():   # checkpoints of runs started before 2026-12-07 21:00 hold it as
        model.entropy.cdf = model.entropy.cdf.round().to(torch.int32)   # float32 (exact: entries <= 65536)
    # the motion tables: the ones the model carries (it continued an exported model), else motion_from's
    mv = motion_cdf_rows(model) if model.entropy.exported else motion_tables(motion_from)
    model.entropy.cdf = freeze_tables(model, mv)
    gpu = float(run.get("gpu_minutes", 0.0))
    card = carry_on(prev_card, version, int(run["steps"]), (float(run["minutes"]) - gpu) / 60, gpu / 60, command)
    digest = save_model(model, name, out, card=card)
    print_exported(name, out, card, digest, model)
    return digest


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.export_v2", description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", help="a train_v2 checkpoint (its folder's card.json is the record)")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--name", default="ncodec-base")
    p.add_argument("--version")
    p.add_argument("--weights", choices=("ema", "model"),
                   help="a checkpoint's weight average (ema, the default when it has one) or trained weights (model)")
    p.add_argument("--command", help="the training command, recorded in the card")
    a = p.parse_args(argv)
    from .train_v2 import load_checkpoint
    ck = load_checkpoint(a.checkpoint, a.weights or "auto")
    model, run = ck.model, ck.record
    prev = json.loads((Path(a.checkpoint).parent / "card.json").read_text())
    export_v2(model, a.name, a.out, prev, run, a.version, a.command)


if __name__ == "__main__":
    from ._command import run_command
    sys.exit(run_command(main))
