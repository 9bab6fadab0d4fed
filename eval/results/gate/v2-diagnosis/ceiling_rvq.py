"""Whole-frame I-frame ceiling of an RVQ (v1) model: continuous latent vs n RVQ stages, first 4 val frames."""
import os, sys, math, torch
sys.path.insert(0, os.environ.get('NCODEC_TREE', '.'))
torch.set_num_threads(1)
import neuralcodec
from eval.compare import validation_clips
codec = neuralcodec.load_codec(sys.argv[1]); m = codec.model.eval()
clips = validation_clips(os.environ.get('NCODEC_PACK', 'data/train.ncpack'), 4)
for name, fr in clips.items():
    x0 = torch.from_numpy(fr).permute(0, 3, 1, 2).float() / 255
    H, W = x0.shape[-2:]
    x = torch.nn.functional.pad(x0, (0, (-W) % 16, 0, (-H) % 16), mode='replicate')
    with torch.no_grad():
        z = m.i_enc(x)
        for n in (0, 1, 2, 4, 8):
            zq = z if n == 0 else m.i_vq.decode(m.i_vq.encode(z, n))
            xh = (m.i_dec(zq) + 0.5)[..., :H, :W].clamp(0, 1)
            print(name, 'continuous' if n == 0 else f'{n} stages', f'{10 * math.log10(1 / float((xh - x0).pow(2).mean())):.2f} dB')
