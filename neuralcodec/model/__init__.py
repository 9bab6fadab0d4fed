"""Network parts of the ncodec model (pure torch, no bytes): autoencoders, residual VQ, motion, and the buffer
of frozen entropy tables that the coding layer (neuralcodec.coding) codes with."""
from .codec_model import ForwardOutput, VideoCodecModel, to_levels
from .config import LEARNED_RATE, RVQ, TINY, TINY_V2, ModelConfig
from .learned_rate import FrameLatents, LearnedRateModel
from .entropy import EntropyTables

__all__ = ["EntropyTables", "ForwardOutput", "FrameLatents", "LEARNED_RATE", "LearnedRateModel", "ModelConfig", "RVQ",
           "TINY", "TINY_V2", "VideoCodecModel", "to_levels"]
