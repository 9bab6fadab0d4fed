"""ncodec: a learned video codec (integer latents under a learned hyperprior, I/P-frames with motion, rANS-coded
.ncv streams)."""
from __future__ import annotations

import importlib

__version__ = "0.2.0"

# The codec pulls in torch; load it on first use so `ncodec --version` and `import neuralcodec` stay fast.
_LAZY = {
    "Codec": "codec", "ModelError": "codec", "StreamDecoder": "codec", "StreamEncoder": "codec",
    "DEFAULT_MODEL": "registry", "REGISTRY": "registry", "load_codec": "registry", "load_codec_for_stream": "registry",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
