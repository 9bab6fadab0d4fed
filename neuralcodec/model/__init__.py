"""Network parts of the ncodec model (pure torch, no bytes): the transforms, motion, the gains and integer latents
under a hyperprior, and the buffer of frozen entropy tables that the coding layer (neuralcodec.coding) codes with."""
from .codec_model import to_levels
from .config import LEARNED_RATE, TINY, ModelConfig
from .entropy import EntropyTables
from .learned_rate import FrameLatents, LearnedRateModel

__all__ = ["EntropyTables", "FrameLatents", "LEARNED_RATE", "LearnedRateModel", "ModelConfig", "TINY", "to_levels"]
