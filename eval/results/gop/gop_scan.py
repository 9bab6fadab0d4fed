"""BD-rate of GOP lengths against GOP 32 for the shipped codec on training-split video clips (encoder setting;
the evaluation clips stay untouched). Usage: gop_scan.py FRAMES GOP,GOP,..."""
import os, sys, json, numpy as np, torch
sys.path.insert(0, os.environ.get('NCODEC_TREE', '.'))
torch.set_num_threads(1)
import neuralcodec
from neuralcodec.training.pack import iter_pack
from eval.compare import rd_points, compare
n = int(sys.argv[1]); gops = [int(g) for g in sys.argv[2].split(',')]
clips = {str(it['name']): np.asarray(fr[:n]) for it, fr in iter_pack(os.environ.get('NCODEC_PACK', 'data/train.ncpack'), 'train') if it.get('source') == 'video'}
codec = neuralcodec.load_codec()
res = {g: rd_points(codec, clips, gop=g) for g in gops}
json.dump(res, open('gop_scan.json', 'w'))
for g in gops:
    r = compare(res[g], res[32])
    print(g, {m: (round(v['mean']['value'], 1), {c: round(x['value'], 1) for c, x in v['clips'].items()}) for m, v in r.items()})
