"""Network parts of the ncodec model (pure torch, no bytes): transforms, integer hyper-synthesis, priors, motion."""
from .codec_model import ForwardOutput, FrameCode, FrameParams, VideoCodecModel, quantize, to_levels
from .config import TINY, ModelConfig
from .intnet import scale_table

__all__ = ["ForwardOutput", "FrameCode", "FrameParams", "ModelConfig", "TINY", "VideoCodecModel", "quantize",
           "scale_table", "to_levels"]
