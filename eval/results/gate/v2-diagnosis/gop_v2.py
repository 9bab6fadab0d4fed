"""Per-frame PSNR and estimated bits of a v2 model along a GOP (integer path), with each P-frame's continuous
ceiling (unrounded latent, same reference, `c`) and its motion-compensated prediction (`w`).

    NCODEC_TREE=/tmp/v2 NCODEC_PACK=data/train.ncpack python gop_v2.py MODEL [FRAMES]
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.environ.get("NCODEC_TREE", "."))


def gop_table(m, n=10):
    """Print, per validation clip and quality 4 / 16, each frame's 'PSNR/bpp [cCEILING wWARPED]'."""
    from eval.compare import validation_clips
    from neuralcodec.model.codec_model import to_levels
    ps = lambda a, b: 10 * math.log10(1 / float((a - b).pow(2).mean()))  # noqa: E731
    for name, fr in validation_clips(os.environ.get("NCODEC_PACK", "data/train.ncpack"), n).items():
        x0 = torch.from_numpy(fr).permute(0, 3, 1, 2).float() / 255
        H, W = x0.shape[-2:]
        xs = torch.nn.functional.pad(x0, (0, (-W) % 64, 0, (-H) % 64), mode="replicate")
        for q in (3, 15):
            qq, ref, prev, row = torch.tensor([q]), None, None, []
            with torch.no_grad():
                for t in range(n):
                    x = xs[t:t + 1]
                    code, params = m.encode_frame(x, qq, ref, prev)
                    xh, y_hat = m.decode_frame(code, params, ref)
                    bits = float(m.frame_bits(code, params).sum())
                    extra = ""
                    if ref is not None:
                        warped = m.warp(ref, code.mv)
                        xc = m.synthesise(False, m.analyse(False, x, qq, warped), qq, warped)
                        extra = (f" c{ps(xc[..., :H, :W].clamp(0, 1), x0[t:t + 1]):.1f}"
                                 f" w{ps(warped[..., :H, :W], x0[t:t + 1]):.1f}")
                    row.append(f"{ps(to_levels(xh)[..., :H, :W], x0[t:t + 1]):.2f}/{bits / (H * W):.3f}{extra}")
                    ref, prev = to_levels(xh), y_hat
            print(name, f"q{q + 1}", " | ".join(row), flush=True)


if __name__ == "__main__":
    import neuralcodec
    torch.set_num_threads(2)
    gop_table(neuralcodec.load_codec(sys.argv[1]).model.eval(), int(sys.argv[2]) if len(sys.argv) > 2 else 10)
