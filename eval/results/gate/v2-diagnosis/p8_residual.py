"""Variant of p8_experiment.py: the 1/8 P-frame encoder sees the prediction residual, [x - warped, warped], instead
of [x, warped] (the RVQ model's P encoder codes x - warped). Same start, data, schedule and table as p8_experiment.

    NCODEC_TREE=/tmp/v2 NCODEC_PACK=data/train.ncpack python p8_residual.py V2_MODEL MINUTES OUT.pt
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from p8_experiment import P8, VideoCodecModel, main  # noqa: E402


class P8Residual(P8):
    def analyse(self, intra, x, q, warped):
        if intra:
            return VideoCodecModel.analyse(self, intra, x, q, warped)
        with self._amp():
            y = self.p_enc8(torch.cat([x - warped, warped], 1))
        return y.float() * self._gain(intra, q)


if __name__ == "__main__":
    main(P8Residual)
