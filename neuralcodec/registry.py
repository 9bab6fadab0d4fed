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
from .model import ModelConfig, VideoCodecModel

MODELS_DIR = Path(__file__).parent / "models"
FORMAT = "ncodec-model-2"
MAX_CARD_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelEntry:
    """A model that ships inside the package."""

    name: str
    filename: str
    sha256: str
    version: str = ""       # the shipped model's version (one row of the model card's learning curve each)


REGISTRY: dict[str, ModelEntry] = {
    e.name: e for e in [
        ModelEntry("ncodec-base", "ncodec-base.safetensors",
                   "9fe585926b4c80100e2391bc0619310fb957be2d14e1d187ff34e8d78bc89536", version="2.0rc3"),
    ]
}
DEFAULT_MODEL = "ncodec-base"


def save_model(model: VideoCodecModel, name: str, path: str | os.PathLike, card: dict | None = None,
               half: bool = True) -> str:
    """Write weights (fp16 floats; the integer network and gains in fp32), tables, config and model card
    (training history, measured figures) to a safetensors file; returns its sha256."""
    if model.cdf.numel() == 0:
        raise ModelError("model has no frozen entropy tables; export it first")
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu().contiguous()
        if half and v.is_floating_point() and not _keep_fp32(k):
            v = v.half()
        tensors[k] = v
    meta = {"format": FORMAT, "name": name, "config": model.cfg.to_json(),
            "card": json.dumps(card or {}, sort_keys=True)}
    from .io import atomic_output
    with atomic_output(path, force=True) as tmp:  # replaces an older model file, never a folder or device
        save_file(tensors, str(tmp), metadata=meta)
    return file_sha256(path)


def _keep_fp32(key: str) -> bool:
    """The integer hyper-synthesis's weights (rounded to 2^-8 at use: fp16 keeps them), priors and gains stay fp32."""
    return "hyper_s" in key or "zprior" in key or "gain" in key


def round_like_saved(model: VideoCodecModel) -> None:
    """Round weights as save_model stores them, so what export measures is what ships."""
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point() and not _keep_fp32(k):
                v.copy_(v.half().float())


def read_model(path: str | os.PathLike) -> tuple[VideoCodecModel, str, dict]:
    """Build the model a safetensors file describes; returns (model, name, card). ModelError on any defect.

    The file is untrusted: its metadata is parsed and its config validated (bounded sizes) before any tensor
    is built, and every tensor must match the built model's shapes and dtypes exactly.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                fmt = str(meta.get("format"))[:40]
                raise ModelError(f"{path}: not an ncodec model file of this version (format {fmt!r})")
            for key in ("name", "config", "card"):
                if not isinstance(meta.get(key), str) or len(meta[key]) > MAX_CARD_BYTES:
                    raise ModelError(f"{path}: model file lacks a valid {key!r} entry")
            try:
                cfg = ModelConfig.from_json(meta["config"])
                card = json.loads(meta["card"])
            except ValueError as e:
                raise ModelError(f"{path}: bad model config: {e}") from None
            if not isinstance(card, dict):
                raise ModelError(f"{path}: model card must be a JSON object")
            model = VideoCodecModel(cfg)
            ref = model.state_dict()
            keys = set(f.keys())
            if keys != set(ref):
                missing, extra = sorted(set(ref) - keys)[:3], sorted(keys - set(ref))[:3]
                raise ModelError(f"{path}: weights do not match the config (missing {missing}, unexpected {extra})")
            state = {}
            for k in ref:
                sl = f.get_slice(k)
                shape = tuple(sl.get_shape())
                if k != "cdf" and shape != tuple(ref[k].shape):
                    raise ModelError(f"{path}: tensor {k} has shape {shape}, the config needs {tuple(ref[k].shape)}")
                if k == "cdf" and (len(shape) != 2 or shape[0] * shape[1] > 1 << 24):
                    raise ModelError(f"{path}: bad CDF table shape {shape}")
                t = f.get_tensor(k)
                state[k] = t.to(ref[k].dtype) if ref[k].is_floating_point() and t.is_floating_point() else t
    except ModelError:
        raise
    except Exception as e:  # safetensors raises several types for a bad file
        raise ModelError(f"{path}: cannot read model file ({type(e).__name__}: {str(e)[:200]})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(f"{path}: weights do not match the config ({str(e).splitlines()[0][:200]})") from None
    if state["cdf"].dtype != torch.int32:
        raise ModelError(f"{path}: CDF tables must be int32")
    try:
        from .coding import coder_tables
        coder_tables(model)
    except ValueError as e:
        raise ModelError(f"{path}: bad entropy tables ({e})") from None
    return model.eval(), meta["name"], card


def load_codec(name_or_path: str | os.PathLike | None = None) -> Codec:
    """Load a shipped model by name (default: the package's default) or a model file by path; offline."""
    key = DEFAULT_MODEL if name_or_path is None else str(name_or_path)
    version = ""
    if key in REGISTRY:
        entry = REGISTRY[key]
        path = MODELS_DIR / entry.filename
        if not path.exists():
            raise ModelError(f"model {key!r}: file {path} is missing from the package")
        digest = file_sha256(path)
        if digest != entry.sha256:
            raise ModelError(f"model {key!r}: sha256 {digest[:16]}... does not match the pinned {entry.sha256[:16]}...")
        version = entry.version
    else:
        path = Path(key)
        if not path.is_file():
            raise ModelError(f"unknown model {key!r}: not a shipped model ({', '.join(REGISTRY)}) nor a file")
        digest = file_sha256(path)
    model, name, card = read_model(path)
    return Codec(model, name, digest, {**card, "name": name, "version": version, "sha256": digest})


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


def list_models() -> list[dict]:
    """The shipped models' cards (name, version, parameters, decoder MAC per pixel, training history), as
    load_codec(name).card gives them, plus whether each is the default and its file."""
    out = []
    for name, entry in REGISTRY.items():
        path = MODELS_DIR / entry.filename
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            card = json.loads(meta.get("card", "{}"))
        except Exception:
            card = {}
        out.append({**card, "name": name, "version": entry.version, "default": name == DEFAULT_MODEL,
                    "file": entry.filename, "sha256": entry.sha256})
    return out
