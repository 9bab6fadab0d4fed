"""Export of model v2: freeze the integer tables and write a model file with the cumulative training record.

`python -m neuralcodec.training.export_v2 CHECKPOINT -o MODEL.safetensors --version V` (a train_v2 checkpoint:
its weight average when the run kept one, `--weights model` for the trained weights themselves),
or `--from-transfer WEIGHTS` to build model v2 from the experiment that put the learned rate on the RVQ model's
transforms (eval/results/gate/v2-transfer/transfer.py), with its training record.

No statistics pass: the z tables come from the factorized priors and the y tables from the scale table, so an
export takes seconds. The motion tables (the motion search is the RVQ model's, unchanged) are the ones the model
carries (it continued an exported model), else the shipped model's.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

import torch

from ..coding.hyper import freeze_tables, motion_cdf_rows
from ..model import LEARNED_RATE, LearnedRateModel
from ..model.hyperprior import SCALE_MIN, SCALE_STEP
from .export import carry_on, print_exported

DEFAULT_MOTION_TABLES = "ncodec-base"


def motion_tables(src: str) -> list:
    """The motion tables (CDF rows) of a model (name or file)."""
    from ..registry import MODELS_DIR, REGISTRY, read_model
    path = MODELS_DIR / REGISTRY[src].filename if src in REGISTRY else Path(src)
    return motion_cdf_rows(read_model(path)[0])


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
    card = carry_on(prev_card, version, int(run["steps"]), (float(run["minutes"]) - gpu) / 60, False, command)
    card["gpu_hours"] = (card["gpu_hours"] or 0.0) + gpu / 60
    digest = save_model(model, name, out, card=card)
    print_exported(name, out, card, digest, model)
    return digest


def from_transfer(weights: str | Path, base: str = "ncodec-base") -> tuple[LearnedRateModel, dict, dict]:
    """Model v2 from the transfer experiment's weights (transfer.py --save-weights): the RVQ model's transforms,
    per-quality gains, float hyperpriors whose last layer is folded into scale-index units. Returns the model, the
    run's {steps, minutes} as its metadata records them, and the training record of base (the RVQ model)."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    from ..registry import load_codec
    rvq = load_codec(base)
    v2cfg = dataclasses.replace(rvq.model.cfg, rate_model=LEARNED_RATE, qualities=16, hyper_channels=64,
                                hyper_dim=32)
    model = LearnedRateModel(v2cfg)
    src = {k: v.float() for k, v in load_file(str(weights)).items()}
    state = {}
    for k, v in src.items():
        if k.startswith("base."):
            state[k[5:]] = v
            continue
        if k in ("gi", "gp"):
            state["gain_i" if k == "gi" else "gain_p"] = v
            continue
        part, rest = k.split(".", 1)
        hyper = "hyper_i" if part == "hi" else "hyper_p"
        for a, b in (("ha.", "analysis."), ("hs.0.", "hs0.conv."), ("hs.2.", "hs1.conv."), ("ctx.0.", "ctx0.conv."),
                     ("ctx.2.", "ctx1.conv."), ("out.", "out.conv."), ("eb.matrices.", "prior.matrices."),
                     ("eb.biases.", "prior.biases."), ("eb.factors.", "prior.factors.")):
            if rest.startswith(a):
                key = f"{hyper}.{b}{rest[len(a):]}"
                if a == "out.":      # log sigma -> scale index units
                    v = v / SCALE_STEP if rest.endswith("weight") else (v - math.log(SCALE_MIN)) / SCALE_STEP
                state[key] = v
                break
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"entropy.cdf"}:
        raise ValueError(f"transfer weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
    with safe_open(str(weights), "pt") as f:
        meta = f.metadata() or {}
    return model, {"steps": int(meta.get("step", 0)), "minutes": float(meta.get("minutes", 0.0))}, dict(rvq.training)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.export_v2", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("checkpoint", nargs="?", help="a train_v2 checkpoint (its folder's card.json is the record)")
    src.add_argument("--from-transfer", metavar="WEIGHTS", help="the transfer experiment's weights (.safetensors)")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--name", default="ncodec-base")
    p.add_argument("--version")
    p.add_argument("--history-from", default="ncodec-base",
                   help="with --from-transfer: the RVQ model whose transforms and record it continued")
    p.add_argument("--extra-steps", type=int, default=0, help="with --from-transfer: steps not in its metadata")
    p.add_argument("--extra-minutes", type=float, default=0.0, help="with --from-transfer: minutes likewise")
    p.add_argument("--weights", choices=("ema", "model"),
                   help="a checkpoint's weight average (ema, the default when it has one) or trained weights (model)")
    p.add_argument("--command", help="the training command, recorded in the card")
    a = p.parse_args(argv)
    if a.from_transfer:
        model, run, prev = from_transfer(a.from_transfer, a.history_from)
        run = {"steps": run["steps"] + a.extra_steps, "minutes": run["minutes"] + a.extra_minutes}
    else:
        from .train_v2 import load_checkpoint
        model, run, _, _ = load_checkpoint(a.checkpoint, a.weights or "auto")
        prev = json.loads((Path(a.checkpoint).parent / "card.json").read_text())
    export_v2(model, a.name, a.out, prev, run, a.version, a.command)


if __name__ == "__main__":
    from ._command import run_command
    sys.exit(run_command(main))
