"""Turn a training checkpoint into a shipped model: fp16 weights, frozen CDF tables, config, sha256."""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..codec import Codec
from ..coding import PRESETS, FrameCoder, Level, SymbolCounts
from ..model import VideoCodecModel
from ..model.config import ModelConfig
from ..model.motion import MV_CODINGS
from ..registry import save_model

ECQ_PASSES = 1   # see retable


def build_model(cfg: ModelConfig, weights: dict[str, torch.Tensor], mv_coding: int | None = None) -> VideoCodecModel:
    """A model of cfg holding weights; mv_coding, when given, replaces the config's motion coding: no weight depends
    on it, and the frozen tables, which do, are dropped for the export's statistics pass to rebuild."""
    if mv_coding is not None:
        cfg = replace(cfg, mv_coding=mv_coding)
        weights = {**weights, "entropy.cdf": torch.zeros(0, 0, dtype=torch.int32)}
    model = VideoCodecModel(cfg)
    model.load_state_dict(weights)
    return model.eval()


def load_checkpoint(path: str | Path, mv_coding: int | None = None) -> VideoCodecModel:
    """The model of a training checkpoint (weights only; loaded without unpickling code); mv_coding as in
    build_model."""
    from .train import TrainConfig
    state = torch.load(path, map_location="cpu", weights_only=True)
    return build_model(TrainConfig.from_json(state["config"]).model, state["model"], mv_coding)


def round_to_half(model: VideoCodecModel) -> None:
    """Round weights as save_model stores them, so statistics are gathered on the shipped weights."""
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point() and not k.endswith(".embed"):
                v.copy_(v.half().float())


def gather_statistics(model: VideoCodecModel, clips: list[np.ndarray], levels: dict[int, Level] | None = None,
                      gop: int = 1000, progress: bool = True, ecq: float = 0.0) -> SymbolCounts:
    """Symbol counts of the real coding path over clips (T, H, W, 3) uint8 at every quality level, with the
    medium preset's motion search. ecq 0: the nearest codes (no tables needed); ecq > 0: the entropy-constrained
    codes the encoder sends (Preset.ecq), priced under the model's current tables (a previous pass's)."""
    codec = Codec(model, "stats", "00" * 32, levels)
    counts = SymbolCounts(model.cfg)
    preset = replace(PRESETS["medium"], ecq=ecq)
    jobs = [(clip, lv) for clip in clips for lv in codec.levels.values()]
    for clip, lv in tqdm(jobs, disable=not progress, desc="statistics"):
        coder = FrameCoder(codec, clip.shape[2], clip.shape[1], lv, gop, preset=preset)
        for frame in clip:
            prev = coder.prev_codes
            ftype, codes, mv, _ = coder.analyse(frame)
            counts.add(int(ftype), codes, prev, mv)
    return counts


def retable(model: VideoCodecModel, clips: list[np.ndarray], levels: dict[int, Level] | None = None,
            ecq_passes: int = 0, progress: bool = True) -> torch.Tensor:
    """The frozen CDF tables of a model: counted on the nearest codes, then ecq_passes times on the codes that
    the encoder's entropy-constrained choice (Preset.ecq, the default) sends under the previous pass's tables,
    so that the tables describe what is coded. Leaves the model's own tables as they were."""
    old = model.entropy.cdf
    try:
        cdf = gather_statistics(model, clips, levels, progress=progress).cdf()
        for _ in range(ecq_passes):
            model.entropy.cdf = cdf
            cdf = gather_statistics(model, clips, levels, progress=progress, ecq=PRESETS["medium"].ecq).cdf()
    finally:
        model.entropy.cdf = old
    return cdf


def training_clips(root: str, n: int, clip_len: int, crop: int, seed: int = 7) -> list[np.ndarray]:
    """n training clips (clip_len, crop, crop, 3) uint8 for counting the tables: from a prepared folder, or from
    a pack file (as the GPU recipe has)."""
    if Path(root).is_file():
        from .data import PackDataset
        batch = PackDataset(root, "train", clip_len, crop, seed=seed).sample(n, torch.Generator().manual_seed(seed))
        clips = list(batch.cpu())
    else:
        from .data import ClipDataset
        ds = ClipDataset(root, "train", clip_len, crop, seed=seed)
        clips = [ds[i] for i in range(n)]
    return [(c * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy() for c in clips]


def export_checkpoint(checkpoint: str | Path, out: str | Path, *, name: str = "ncodec-base", data_root: str = "data/",
                      clips: int = 24, clip_len: int = 8, crop: int = 192, levels: dict[int, Level] | None = None,
                      version: str | None = None, history: str | None = None, command: str | None = None,
                      gpu: bool = False, ecq_passes: int = ECQ_PASSES, mv_coding: int | None = None,
                      base_steps: int = 0, base_hours: float = 0.0, hours: float | None = None,
                      progress: bool = True) -> tuple[str, dict, VideoCodecModel]:
    """Write the shipped-model file of a training checkpoint: fp16 weights, tables counted on training clips of
    data_root (a folder or a pack), levels (default: the history model's, as a run that continued a model keeps its
    quality table), and the training record carried on from history. Returns (sha256, card, model)."""
    prev = {}
    if history:
        from ..registry import load_codec
        start = load_codec(history)
        prev, levels = start.training, (start.levels if levels is None else levels)
    model = load_checkpoint(checkpoint, mv_coding)
    round_to_half(model)
    card = training_record(checkpoint, version, prev, command, base_steps, base_hours, hours, gpu)
    model.entropy.cdf = retable(model, training_clips(data_root, clips, clip_len, crop), levels, ecq_passes,
                                progress=progress)
    return save_model(model, name, out, levels=levels, card=card), card, model


def run_hours(checkpoint: str | Path) -> float | None:
    """Wall-clock hours of the run that wrote a checkpoint: the last elapsed_s in the log.csv beside it."""
    from .train import logged_elapsed
    seconds = logged_elapsed(Path(checkpoint).parent / "log.csv")
    return None if seconds is None else seconds / 3600


def carry_on(prev: dict, version: str | None, steps: int = 0, hours: float = 0.0, gpu: bool = False,
             command: str | None = None, base_steps: int = 0, base_hours: float = 0.0) -> dict:
    """A training record (registry.CARD_FIELDS): prev's (a shipped model's record; base_* where it has none) with
    this run's steps and hours added and its command appended."""
    start = {"steps": base_steps, "cpu_hours": base_hours, "gpu_hours": 0.0, "commands": []}
    prev = {k: (prev.get(k) if prev.get(k) is not None else start[k]) for k in start}
    return {"version": version, "steps": prev["steps"] + steps,
            "cpu_hours": prev["cpu_hours"] + (0.0 if gpu else hours),
            "gpu_hours": prev["gpu_hours"] + (hours if gpu else 0.0),
            "commands": list(prev["commands"]) + ([command] if command else [])}


def training_record(checkpoint: str | Path, version: str | None, prev: dict, command: str | None,
                    base_steps: int = 0, base_hours: float = 0.0, hours: float | None = None,
                    gpu: bool = False) -> dict:
    """The model card's training record: this run's steps and hours added to prev, the record of the model it
    continued from ({} for none; base_* where it has no record)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    hours = run_hours(checkpoint) if hours is None else hours
    return carry_on(prev, version, int(state["step"]), hours or 0.0, gpu, command, base_steps, base_hours)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m neuralcodec.training.export", description=__doc__)
    p.add_argument("checkpoint", help="a training checkpoint (.pt), or a shipped model (name or .safetensors): "
                                      "new tables and card for the same weights, its levels and record carried on")
    p.add_argument("-o", "--out", required=True, help="output .safetensors")
    p.add_argument("--name", default="ncodec-base")
    p.add_argument("--data-root", default="data/")
    p.add_argument("--clips", type=int, default=24)
    p.add_argument("--clip-len", type=int, default=8)
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--levels", help='quality table as JSON: {"1": [stages, lam_i, lam_p], ...} (default: the '
                                    '--history-from model\'s, else one level per stage count)')
    p.add_argument("--version", help="the model's version, for its card (e.g. 1.9)")
    p.add_argument("--history-from", metavar="MODEL",
                   help="the model this run continued from (name or file): its training record is carried on")
    p.add_argument("--base-steps", type=int, default=0, help="steps before this run, if MODEL has no record")
    p.add_argument("--base-cpu-hours", type=float, default=0.0, help="CPU hours before this run, likewise")
    p.add_argument("--run-hours", type=float, help="this run's hours (default: the log.csv beside the checkpoint)")
    p.add_argument("--gpu", action="store_true", help="this run's hours were on a GPU")
    p.add_argument("--command", help="the training command of this run, recorded in the card")
    p.add_argument("--ecq-passes", type=int, default=ECQ_PASSES,
                   help="recount the tables this many times on the entropy-constrained codes the encoder sends under "
                        "the previous pass's tables (0: counted on the nearest codes only; default %(default)s)")
    p.add_argument("--mv-coding", type=int, choices=MV_CODINGS, default=ModelConfig().mv_coding,
                   help="motion vector prediction: 0 left neighbour, 1 median with x/y context (default %(default)s)")
    a = p.parse_args(argv)
    levels = ({int(q): Level(*v) for q, v in json.loads(a.levels).items()} if a.levels else None)
    torch.manual_seed(0)
    if a.checkpoint.endswith(".pt"):
        digest, card, model = export_checkpoint(a.checkpoint, a.out, name=a.name, data_root=a.data_root, clips=a.clips,
                                         clip_len=a.clip_len, crop=a.crop, levels=levels, version=a.version,
                                         history=a.history_from, command=a.command, gpu=a.gpu,
                                         ecq_passes=a.ecq_passes, mv_coding=a.mv_coding, base_steps=a.base_steps,
                                         base_hours=a.base_cpu_hours, hours=a.run_hours)
    else:   # no training: the shipped weights (already fp16-rounded), its levels, its record, one more command
        from ..registry import load_codec
        src = load_codec(a.checkpoint)
        model, levels = src.model, levels or src.levels
        card = carry_on(src.training, a.version or src.training.get("version"), command=a.command)
        clips = training_clips(a.data_root, a.clips, a.clip_len, a.crop)
        model.entropy.cdf = retable(model, clips, levels, a.ecq_passes)
        digest = save_model(model, a.name, a.out, levels=levels, card=card)
    print_exported(a.name, a.out, card, digest, model)
    return 0


def print_exported(name: str, out: str | Path, card: dict, digest: str, model: VideoCodecModel) -> None:
    size = Path(out).stat().st_size
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: {size / 1e6:.2f} MB, {n_params / 1e6:.2f} M parameters; {card['steps']} steps, "
          f"{card['cpu_hours']:.2f} CPU hours, {card['gpu_hours']:.2f} GPU hours of training")
    print(f"sha256 {digest}")
    print(f'pin it in neuralcodec/registry.py: ModelEntry("{name}", "{Path(out).name}", "{digest}")')


if __name__ == "__main__":
    sys.exit(main())
