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


def refine(self, *args, **kwargs):
    """The slow preset's refinement with the distortion MSE + W (1 - SSIM)."""
    loss = lambda r, x: (r - x).pow(2).mean() + W * (1 - ssim(r.clamp(0, 1), x, data_range=1.0, size_average=True))  # noqa: E731
    return orig(self, *args, distortion=loss, **kwargs)


CM.VideoCodecModel.refine = refine
codec = neuralcodec.load_codec()
NF = 12
bikes = np.ascontiguousarray(np.load("data/video/bikes_train.npy", mmap_mode="r")[60:60 + NF])
bbb = np.load("data/video/bigbuckbunny_train.npy", mmap_mode="r")[:NF]
bbb = F.avg_pool2d(torch.from_numpy(np.ascontiguousarray(bbb)).permute(0, 3, 1, 2).float(), 4).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
clips = {"bikes": bikes, "bbb": np.ascontiguousarray(bbb)}
res = json.load(open("/tmp/preset_rd_medium_fast_slow.json"))  # written by: preset_rd.py 12 medium,fast,slow
new = rd_points(codec, clips, preset="slow")
for name, ref in (("medium", res["medium"]), ("slow-mse", res["slow"])):
    r = compare(new, ref)
    print(f"W={W} vs {name}:", {m: (round(r[m]["mean"]["value"], 2), {c: round(v["value"], 2) for c, v in r[m]["clips"].items()}) for m in r})
