"""Network parts of the ncodec model: autoencoders, residual VQ, motion and the entropy model."""
from .codec_model import ForwardOutput, VideoCodecModel, to_levels
from .config import TINY, ModelConfig
from .entropy import IndexEntropyModel, TablesNotExportedError

__all__ = ["ForwardOutput", "IndexEntropyModel", "ModelConfig", "TablesNotExportedError", "TINY",
           "VideoCodecModel", "to_levels"]
