"""slow preset with refinement loss MSE + W (1 - SSIM) vs MSE only, training-split clips."""
import sys, json
import numpy as np, torch, torch.nn.functional as F
import neuralcodec
from neuralcodec.model import codec_model as CM
from pytorch_msssim import ssim
from eval.compare import rd_points, compare
torch.set_num_threads(1)
W = float(sys.argv[1])
orig = CM.VideoCodecModel.refine
def refine(self, x, z, vq, n_stages, lam, steps, warped=None, lr=0.02):
    with torch.no_grad():
        ctx = None if warped is None else self.p_ctx(warped)
    dec = self.i_dec if warped is None else self.p_dec
    base = 0.5 if warped is None else warped
    z = z.detach().float().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr * float(z.detach().std().clamp(min=1e-3)))
    for k in range(steps + 1):
        with torch.no_grad():
            codes = vq.encode(z, n_stages, lam); q = vq.decode(codes)
        with torch.enable_grad():
            recon = base + dec(z + (q - z).detach(), ctx).float()
            if k < steps:
                loss = (recon - x).pow(2).mean() + W * (1 - ssim(recon.clamp(0, 1), x, data_range=1.0, size_average=True))
                (z.grad,) = torch.autograd.grad(loss, [z])
        yield codes, recon.detach()
        if k < steps:
            opt.step()
CM.VideoCodecModel.refine = refine
codec = neuralcodec.load_codec()
NF = 12
bikes = np.ascontiguousarray(np.load("data/video/bikes_train.npy", mmap_mode="r")[60:60 + NF])
bbb = np.load("data/video/bigbuckbunny_train.npy", mmap_mode="r")[:NF]
bbb = F.avg_pool2d(torch.from_numpy(np.ascontiguousarray(bbb)).permute(0, 3, 1, 2).float(), 4).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
clips = {"bikes": bikes, "bbb": np.ascontiguousarray(bbb)}
res = json.load(open("/tmp/preset_rd_medium_fast_slow.json"))  
new = rd_points(codec, clips, preset="slow")
for name, ref in (("medium", res["medium"]), ("slow-mse", res["slow"])):
    r = compare(new, ref)
    print(f"W={W} vs {name}:", {m: (round(r[m]["mean"]["value"], 2), {c: round(v["value"], 2) for c, v in r[m]["clips"].items()}) for m in r})
