import os, time, statistics, itertools
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
import numpy as np
import cnnlab.functional as F
from cnnlab.functional import _kernels as K
def t(fn, r=5):
    fn(); ts=[]
    for _ in range(r):
        t0=time.perf_counter(); fn(); ts.append(time.perf_counter()-t0)
    return statistics.median(ts)*1e3
for (n,c,h,w,k) in [(64,32,32,32,64),(64,64,16,16,128)]:
    rng=np.random.default_rng(0)
    x=rng.standard_normal((n,c,h,w),dtype=np.float32); wt=rng.standard_normal((k,c,3,3),dtype=np.float32)
    out,cache=F.conv2d_forward(x,wt,None,1,1)
    d=np.empty_like(out); d[...]=rng.standard_normal(out.shape,dtype=np.float32)
    r={}
    r['fwd']=t(lambda: F.conv2d_forward(x,wt,None,1,1))
    r['bwd']=t(lambda: F.conv2d_backward(d,cache))
    r['bwd_nodx']=t(lambda: F.conv2d_backward(d,cache,need_dx=False))
    xp=cache[-1][1]; w2=cache[-1][2]
    d2=np.moveaxis(d,1,-1).reshape(-1,k)
    def im2():
        for _ in K._im2col_chunks(xp,(3,3),(1,1),(1,1),(h,w)): pass
    r['im2col']=t(im2)
    part=np.empty(w2.shape,np.float32)
    def dw():
        for im,rows,cols in K._im2col_chunks(xp,(3,3),(1,1),(1,1),(h,w)): np.matmul(cols.T,d2[rows],out=part)
    r['im2col+dw']=t(dw)
    def dc():
        for im,rows,cols in K._im2col_chunks(xp,(3,3),(1,1),(1,1),(h,w)): np.matmul(d2[rows],w2.T,out=cols)
    r['im2col+dcols']=t(dc)
    dcols=(d2@w2.T).reshape(n,h,w,-1)
    dxp=np.zeros(xp.shape,np.float32)
    def sc():
        for t_,off in enumerate(itertools.product(range(3),range(3))):
            dxp[:, off[0]:off[0]+h, off[1]:off[1]+w] += dcols[..., t_*c:(t_+1)*c]
    r['scatter_full']=t(sc)
    r['zeros']=t(lambda: np.zeros(xp.shape,np.float32))
    r['dw_full_gemm']=t(lambda: np.matmul(d2.T, np.ones((d2.shape[0],w2.shape[0]),np.float32)[:0].T) if False else None)
    print((n,c,h,w,k), " ".join(f"{a}={b:.1f}" for a,b in r.items()), flush=True)
