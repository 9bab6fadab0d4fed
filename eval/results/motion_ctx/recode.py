"""The shipped model's weights with another motion coding (ModelConfig.mv_coding), its tables rebuilt as the
export builds them (the same training clips and settings), written to a model file for eval.compare.

    PYTHONPATH=. OMP_NUM_THREADS=1 python eval/results/motion_ctx/recode.py 1 /tmp/median.safetensors
    PYTHONPATH=. python -m eval.compare /tmp/median.safetensors ncodec-base --pack data/train.ncpack"""
import sys

import torch

from neuralcodec import load_codec
from neuralcodec.registry import save_model
from neuralcodec.training.export import build_model, gather_statistics, round_to_half, training_clips

coding, out = int(sys.argv[1]), sys.argv[2]
torch.manual_seed(0)
torch.set_num_threads(1)
base = load_codec("ncodec-base")
model = build_model(base.model.cfg, base.model.state_dict(), coding)
round_to_half(model)
model.entropy.cdf = gather_statistics(model, training_clips("data/", 16, 8, 192), base.levels).cdf()
print(out, save_model(model, base.name, out, levels=base.levels, card=base.training))
