"""Per-frame PSNR and estimated bits of a v2 model along a GOP (integer path), with each P-frame's continuous
ceiling (unrounded latent, same reference)."""
import os, sys, math, torch
sys.path.insert(0, os.environ.get('NCODEC_TREE', '.'))
torch.set_num_threads(2)
import neuralcodec
from eval.compare import validation_clips
from neuralcodec.model.codec_model import to_levels
codec = neuralcodec.load_codec(sys.argv[1]); m = codec.model.eval()
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10
clips = validation_clips(os.environ.get('NCODEC_PACK', 'data/train.ncpack'), N)
ps = lambda a, b: 10 * math.log10(1 / float((a - b).pow(2).mean()))
for name, fr in clips.items():
    x0 = torch.from_numpy(fr).permute(0, 3, 1, 2).float() / 255
    H, W = x0.shape[-2:]
    xs = torch.nn.functional.pad(x0, (0, (-W) % 64, 0, (-H) % 64), mode='replicate')
    for q in (3, 15):
        qq = torch.tensor([q]); ref = prev = None; row = []
        with torch.no_grad():
            for t in range(N):
                x = xs[t:t + 1]
                code, params = m.encode_frame(x, qq, ref, prev)
                xh, y_hat = m.decode_frame(code, params, ref)
                bits = float(m.frame_bits(code, params).sum())
                cont = ''
                if ref is not None:
                    warped = m.warp(ref, code.mv)
                    y_g = m.analyse(False, x, qq, warped)
                    xc = m.synthesise(False, y_g, qq, warped)
                    cont = f' c{ps(xc[..., :H, :W].clamp(0, 1), x0[t:t+1]):.1f} w{ps(warped[..., :H, :W], x0[t:t+1]):.1f}'
                row.append(f'{ps(to_levels(xh)[..., :H, :W], x0[t:t+1]):.2f}/{bits / (H * W):.3f}{cont}')
                ref, prev = to_levels(xh), y_hat
        print(name, f'q{q+1}', ' | '.join(row))
