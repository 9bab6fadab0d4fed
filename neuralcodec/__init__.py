"""ncodec: a learned video codec (RVQ autoencoder, I/P-frames with motion, rANS-coded .ncv streams)."""
from .codec import Codec, ModelError, StreamDecoder, StreamEncoder
from .registry import DEFAULT_MODEL, REGISTRY, load_codec, load_codec_for_stream

__version__ = "0.1.0"

__all__ = ["Codec", "DEFAULT_MODEL", "ModelError", "REGISTRY", "StreamDecoder", "StreamEncoder", "__version__",
           "load_codec", "load_codec_for_stream"]
