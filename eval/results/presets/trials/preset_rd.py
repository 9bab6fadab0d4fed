"""BD-rate of each preset against medium on training-split clips (12 frames of bikes and bigbuckbunny/4)."""
import sys, json, time
import numpy as np, torch, torch.nn.functional as F
import neuralcodec
from eval.compare import rd_points
from eval.bdrate import bd_rate
torch.set_num_threads(1)
NF = int(sys.argv[1]); presets = sys.argv[2].split(",")
codec = neuralcodec.load_codec(sys.argv[3]) if len(sys.argv) > 3 else neuralcodec.load_codec()
bikes = np.ascontiguousarray(np.load("data/video/bikes_train.npy", mmap_mode="r")[60:60 + NF])
bbb = np.load("data/video/bigbuckbunny_train.npy", mmap_mode="r")[:NF]
bbb = F.avg_pool2d(torch.from_numpy(np.ascontiguousarray(bbb)).permute(0, 3, 1, 2).float(), 4).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
clips = {"bikes": bikes, "bbb": np.ascontiguousarray(bbb)}
res = {p: rd_points(codec, clips, preset=p) for p in presets}
json.dump(res, open(f"/tmp/preset_rd_{'_'.join(presets)}.json", "w"))
base = res["medium"]
for p in presets:
    for name in clips:
        a, b = res[p]["clips"][name], base["clips"][name]
        fps = np.mean([x["encode_fps"] for x in a])
        out = []
        for met in ("psnr_rgb", "msssim"):
            r = bd_rate([x["bpp"] for x in b], [x[met] for x in b], [x["bpp"] for x in a], [x[met] for x in a])
            out.append(f"{r['value']:+.2f}%" if r["value"] is not None else str(r["reason"]))
        print(p, name, *out, f"{fps:.2f} fps", flush=True)
