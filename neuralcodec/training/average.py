"""Average the weights of a run's last checkpoints (checkpoint averaging, a cheap stand-in for an EMA of the
weights) into one checkpoint that the export reads like any other.

    python -m neuralcodec.training.average runs/x/ckpt_007100.pt ... runs/x/ckpt_008000.pt -o runs/x/avg.pt
    python -m neuralcodec.training.average --last 10 runs/x -o runs/x/avg.pt

Every floating-point tensor of the model (weights, codebooks and their EMA statistics) is the mean over the
checkpoints; integer buffers, the config and the step come from the newest. The checkpoints must share one
config. Write the output beside them so the export finds the run's log.csv (its hours).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..io import OutputError, atomic_output, check_output


def average_checkpoints(paths: list[str | Path]) -> dict:
    """The newest checkpoint's state with every floating-point model tensor averaged over paths (oldest first)."""
    if not paths:
        raise ValueError("no checkpoints to average")
    states = [torch.load(p, map_location="cpu", weights_only=True) for p in paths]
    newest = max(states, key=lambda s: int(s["step"]))
    if any(s["config"] != newest["config"] for s in states):
        raise ValueError("the checkpoints have different configs")
    model = {}
    for k, v in newest["model"].items():
        if v.is_floating_point():
            if any(s["model"][k].shape != v.shape for s in states):
                raise ValueError(f"tensor {k} changes shape between the checkpoints")
            model[k] = torch.stack([s["model"][k].double() for s in states]).mean(0).to(v.dtype)
        else:
            model[k] = v
    return {"config": newest["config"], "step": newest["step"], "vq_ready": newest.get("vq_ready", True),
            "model": model, "averaged": [str(p) for p in paths]}


def last_checkpoints(run: str | Path, n: int) -> list[Path]:
    """The last n ckpt_*.pt of a run folder, oldest first."""
    return sorted(Path(run).glob("ckpt_*.pt"))[-n:]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.average", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="checkpoints, or with --last one run folder")
    p.add_argument("--last", type=int, help="average the last N ckpt_*.pt of the run folder given")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    a = p.parse_args(argv)
    try:
        if a.last is not None:
            if len(a.inputs) != 1 or not Path(a.inputs[0]).is_dir() or a.last < 1:
                raise ValueError("--last N takes one run folder and N >= 1")
            paths = last_checkpoints(a.inputs[0], a.last)
        else:
            paths = [Path(x) for x in a.inputs]
        out = Path(a.out)
        check_output(out, a.force)                   # before the work, again at the rename
        state = average_checkpoints(paths)
        with atomic_output(out, force=a.force) as tmp:
            torch.save(state, tmp)
    except (OSError, ValueError, KeyError, RuntimeError, OutputError) as e:
        print(f"error: {str(e)[:300]}", file=sys.stderr)
        return 1
    print(f"wrote {out}: mean of {len(paths)} checkpoints, {paths[0].name} .. {paths[-1].name}, "
          f"step {int(state['step'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
