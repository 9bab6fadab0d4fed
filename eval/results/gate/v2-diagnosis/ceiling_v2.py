"""Whole-frame I-frame diagnostics of a v2 model on the validation clips (first 4 frames)."""
import os, sys, math, torch
sys.path.insert(0, os.environ.get('NCODEC_TREE', '.'))
torch.set_num_threads(1)
import neuralcodec
from eval.compare import validation_clips
codec = neuralcodec.load_codec(sys.argv[1])
m = codec.model.eval()
clips = validation_clips(os.environ.get('NCODEC_PACK', 'data/train.ncpack'), 4)
def pad(x, a=64):
    h, w = x.shape[-2:]
    return torch.nn.functional.pad(x, (0, (-w) % a, 0, (-h) % a), mode='replicate')
for name, fr in clips.items():
    x0 = torch.from_numpy(fr).permute(0, 3, 1, 2).float() / 255
    H, W = x0.shape[-2:]
    x = pad(x0)
    print(name, fr.shape, 'padded', tuple(x.shape[-2:]))
    with torch.no_grad():
        for q in (0, 5, 10, 15):
            qq = torch.full((x.shape[0],), q)
            y_g = m.analyse(True, x, qq, None)
            cont = m.synthesise(True, y_g, qq, None)[..., :H, :W].clamp(0, 1)
            p_cont = 10 * math.log10(1 / float((cont - x0).pow(2).mean()))
            bits = 0; p = []
            code, params = m.encode_frame(x, qq)
            bits = float(m.frame_bits(code, params).sum())
            xh, _ = m.decode_frame(code, params)
            xh = xh[..., :H, :W].clamp(0, 1)
            p_int = 10 * math.log10(1 / float((xh - x0).pow(2).mean()))
            print(f'  q{q+1}: continuous {p_cont:.2f} dB, integer {p_int:.2f} dB at {bits / (x0.shape[0]*H*W):.3f} bpp (est)')
