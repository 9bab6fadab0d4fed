"""Network parts of the ncodec model (pure torch, no bytes): autoencoders, residual VQ, motion, and the buffer
of frozen entropy tables that the coding layer (neuralcodec.coding) codes with."""
from .codec_model import ForwardOutput, VideoCodecModel, to_levels
from .config import TINY, ModelConfig
from .entropy import EntropyTables

__all__ = ["EntropyTables", "ForwardOutput", "ModelConfig", "TINY", "VideoCodecModel", "to_levels"]
