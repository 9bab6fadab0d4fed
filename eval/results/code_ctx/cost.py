"""Estimated code bytes on the val split under richer stage contexts than the shipped ones, tables fitted on the
train split (add-0.05 smoothing as the export): percent change per clip and quality against the shipped
contexts. nb_s1: nonzero codes of stage s-1 among the 8 neighbours (0, 1-2, 3+); nb_prev: the same in the
previous frame's stage s; both; anyprev: zeros among all earlier stages at the block.

    python eval/results/code_ctx/cost.py   (reads /tmp/codes_train.npz, /tmp/codes_val.npz)"""
import numpy as np
from scipy.ndimage import convolve
K=256


def load(path):
    """[(clip, quality, frame type, codes, previous codes or None)] from collect.py's .npz (no pickles)."""
    d = np.load(path)
    recs = []
    for k in sorted(k for k in d.files if k.endswith("|codes")):
        i, name, q, ft, _ = k.split("|")
        recs.append((name, int(q), int(ft), d[k], d[f"{i}|prev"] if f"{i}|prev" in d.files else None))
    return recs


tr, va = load('/tmp/codes_train.npz'), load('/tmp/codes_val.npz')
def nbcount(nz):  # count of nonzero among 8 neighbours
    return convolve(nz.astype(np.int32), np.array([[1,1,1],[1,0,1],[1,1,1]]), mode='constant')
def ctxs(codes, prev, s, scheme):
    c = np.zeros(codes.shape[1:], np.int64)
    if s>0: c += codes[s-1]==0
    if prev is not None and s < prev.shape[0]: c += 2*(prev[s]==0)
    if scheme=='base': return c, 4
    if scheme=='nb_s1':
        n = nbcount(codes[s-1]!=0) if s>0 else np.zeros_like(c)
        return c + 4*np.minimum(2,(n+1)//2*(n>0)), 12   # 0, 1-2, 3+
    if scheme=='nb_prev':
        n = nbcount(prev[s]!=0) if (prev is not None and s<prev.shape[0]) else np.zeros_like(c)
        return c + 4*np.minimum(2,(n+1)//2*(n>0)), 12
    if scheme=='both':
        n1 = nbcount(codes[s-1]!=0) if s>0 else np.zeros_like(c)
        n2 = nbcount(prev[s]!=0) if (prev is not None and s<prev.shape[0]) else np.zeros_like(c)
        b=lambda n: np.minimum(2,(n+1)//2*(n>0))
        return c + 4*b(n1) + 12*b(n2), 36
    if scheme=='anyprev':  # any earlier stage zero at this position -> c0 refined: count zeros among earlier stages
        z = (codes[:s]==0).sum(0) if s>0 else np.zeros_like(c)
        return c + 4*np.minimum(2, z), 12
def cost(scheme, prior=0.05):
    n=np.zeros((2,8,36,K))
    for _,q,ft,codes,prev in tr:
        for s in range(codes.shape[0]):
            c,_=ctxs(codes,prev,s,scheme); np.add.at(n[ft,s],(c.ravel(),codes[s].ravel().astype(np.int64)),1)
    p=(n+prior); p/=p.sum(-1,keepdims=True)
    tot={}
    for name,q,ft,codes,prev in va:
        for s in range(codes.shape[0]):
            c,_=ctxs(codes,prev,s,scheme)
            b=-np.log2(p[ft,s][c.ravel(),codes[s].ravel().astype(np.int64)]).sum()/8
            tot[(name,q)]=tot.get((name,q),0)+b
    return tot
base=cost('base')
for sc in ('nb_s1','nb_prev','both','anyprev'):
    t=cost(sc)
    print(sc, 'total %.1f%%'%(100*(sum(t.values())/sum(base.values())-1)), {k: '%.1f%%'%(100*(t[k]/base[k]-1)) for k in sorted(t)})
print({k: round(v) for k,v in sorted(base.items())})
