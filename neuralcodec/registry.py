"""Shipped models: names, files inside the package and their pinned sha256; loading from safetensors."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .codec import Codec, ModelError, file_sha256
from .coding import EntropyCoder
from .model import LearnedRateModel, ModelConfig

MODELS_DIR = Path(__file__).parent / "models"
FORMAT = "ncodec-model-1"


@dataclass(frozen=True)
class ModelEntry:
    """A model that ships inside the package."""

    name: str
    filename: str
    sha256: str


REGISTRY: dict[str, ModelEntry] = {
    e.name: e for e in [
        ModelEntry("ncodec-base", "ncodec-base.safetensors",
                   "ebd1ed3f70d3cad714b1cd8345a9c7b71da8e7851acaf79349f29587c5bfcbc4"),
    ]
}
DEFAULT_MODEL = "ncodec-base"


CARD_FIELDS = {"version": str, "steps": int, "cpu_hours": float, "gpu_hours": float, "commands": list}
MAX_CARD_BYTES = 1 << 16


def check_card(card: object, where: str = "model card") -> dict:
    """A model card's training record, validated: only CARD_FIELDS, each of its type, commands a list of strings
    (a model file is untrusted input; ModelError otherwise)."""
    if not isinstance(card, dict) or set(card) - set(CARD_FIELDS):
        raise ModelError(f"{where}: expected an object with fields among {sorted(CARD_FIELDS)}")
    out = {}
    for key, kind in CARD_FIELDS.items():
        v = card.get(key)
        if v is None:
            out[key] = None
            continue
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, kind) or isinstance(v, bool) or (kind in (int, float) and not 0 <= v < 1e12):
            raise ModelError(f"{where}: field {key!r} must be a {kind.__name__}")
        if kind is list and not all(isinstance(c, str) for c in v):
            raise ModelError(f"{where}: field {key!r} must be a list of strings")
        out[key] = v
    return out


def save_model(model: LearnedRateModel, name: str, path: str | os.PathLike, half: bool = True,
               card: dict | None = None) -> str:
    """Write weights (fp16 floats), buffers, config and the training record (card: CARD_FIELDS) to a safetensors
    file; returns its sha256."""
    if not model.entropy.exported:
        raise ModelError("model has no frozen entropy tables; export it (training.export_v2) first")
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        if half and v.is_floating_point() and not k.endswith(".embed"):
            v = v.half()
        tensors[k] = v
    meta = {"format": FORMAT, "name": name, "config": model.cfg.to_json()}
    if card is not None:
        meta["card"] = json.dumps(check_card(card))
    from .io import atomic_output
    with atomic_output(path, force=True) as tmp:  # replaces an older model file, never a folder or device
        save_file(tensors, str(tmp), metadata=meta)
    return file_sha256(path)


def read_model(path: str | os.PathLike) -> tuple[LearnedRateModel, str, dict]:
    """Build the model a safetensors file describes; returns (model, name, training record). ModelError on any
    defect, an RVQ model's file (ncodec-base 1.x) among them.

    The file is untrusted: its metadata is parsed and its config validated (bounded sizes) before any tensor is
    built, and every tensor's shape is checked against the built model before it is read.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                fmt = str(meta.get("format"))[:40]
                raise ModelError(f"{path}: not an ncodec model file (format {fmt!r})")
            for key in ("name", "config"):
                if not isinstance(meta.get(key), str) or len(meta[key]) > 1 << 16:
                    raise ModelError(f"{path}: model file lacks a valid {key!r} entry")
            try:
                cfg = ModelConfig.from_json(meta["config"])
            except ValueError as e:
                raise ModelError(f"{path}: bad model config: {e}") from None
            raw_card = meta.get("card", "{}")
            if len(raw_card) > MAX_CARD_BYTES:
                raise ModelError(f"{path}: model card over {MAX_CARD_BYTES} bytes")
            card = check_card(json.loads(raw_card), f"{path}: model card")
            model = LearnedRateModel(cfg)
            ref = model.state_dict()
            if set(f.keys()) != set(ref):
                missing, extra = sorted(set(ref) - set(f.keys()))[:3], sorted(set(f.keys()) - set(ref))[:3]
                raise ModelError(f"{path}: weights do not match the config (missing {missing}, unexpected {extra})")
            state = {}
            for k in ref:
                shape = tuple(f.get_slice(k).get_shape())
                if k == "entropy.cdf":
                    if len(shape) != 2 or shape[0] * shape[1] > 1 << 24:
                        raise ModelError(f"{path}: bad CDF table shape {shape}")
                elif shape != tuple(ref[k].shape):
                    raise ModelError(f"{path}: tensor {k} has shape {shape}, the config needs {tuple(ref[k].shape)}")
                t = f.get_tensor(k)
                state[k] = t.to(ref[k].dtype) if ref[k].is_floating_point() and t.is_floating_point() else t
    except ModelError:
        raise
    except Exception as e:  # safetensors and json raise several types for a bad file
        raise ModelError(f"{path}: cannot read model file ({type(e).__name__}: {str(e)[:200]})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(f"{path}: weights do not match the config ({str(e).splitlines()[0][:200]})") from None
    if model.entropy.exported:
        try:
            EntropyCoder(model)
        except ValueError as e:
            raise ModelError(f"{path}: bad entropy tables ({str(e)[:200]})") from None
    return model.eval(), meta["name"], card


def load_codec(name_or_path: str | os.PathLike | None = None) -> Codec:
    """Load a shipped model by name (default: the package's default) or a model file by path; offline."""
    key = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    if key in REGISTRY:
        entry = REGISTRY[key]
        path = MODELS_DIR / entry.filename
        if not path.exists():
            raise ModelError(f"model {key!r}: file {path} is missing from the package")
        digest = file_sha256(path)
        if digest != entry.sha256:
            raise ModelError(f"model {key!r}: sha256 {digest[:16]}... does not match the pinned {entry.sha256[:16]}...")
    else:
        path = Path(key)
        if not path.is_file():
            raise ModelError(f"unknown model {key!r}: not a shipped model ({', '.join(REGISTRY)}) nor a file")
        digest = file_sha256(path)
    torch.set_flush_denormal(True)
    model, name, card = read_model(path)
    return Codec(model, name, digest, card)


def load_codec_for_stream(src) -> Codec:
    """Load the shipped model that an .ncv stream (path or binary file object) names in its header."""
    from bitstream import StreamReader
    if hasattr(src, "read"):
        pos = src.tell()
        header = StreamReader(src).header
        src.seek(pos)
    else:
        with open(src, "rb") as f:
            header = StreamReader(f).header
    if header.model_name not in REGISTRY:
        raise ModelError(f"stream needs model {header.model_name!r}, which is not installed "
                         f"(installed: {', '.join(REGISTRY)})")
    codec = load_codec(header.model_name)
    codec.check_stream(header)
    return codec


def model_info(path: str | os.PathLike) -> dict:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return {"name": meta.get("name"), "config": json.loads(meta.get("config", "{}"))}
