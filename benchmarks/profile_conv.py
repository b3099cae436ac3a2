"""Time the sub-steps of cnnlab's conv2d forward+backward per benchmark row (for optimizing)."""
import os, sys, time, statistics, itertools
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
import numpy as np
from cnnlab.functional import _kernels as K
from cnnlab.functional.conv import conv2d_forward, conv2d_backward
from cnnlab.functional._args import resolve_padding, output_shape

ROWS = [(64,1,28,28,6,5,1,2),(64,6,14,14,16,5,1,0),(64,3,32,32,32,3,1,1),(64,32,32,32,64,3,1,1),
        (64,64,16,16,128,3,1,1),(32,128,8,8,256,3,1,1),(16,3,224,224,64,11,4,2)]

def t(fn, r=5):
    fn(); ts=[]
    for _ in range(r):
        t0=time.perf_counter(); fn(); ts.append(time.perf_counter()-t0)
    return statistics.median(ts)*1e3

for (n,c,h,w,k,f,s,p) in ROWS:
    rng=np.random.default_rng(0)
    x=rng.standard_normal((n,c,h,w),dtype=np.float32); wt=rng.standard_normal((k,c,f,f),dtype=np.float32)
    pads=resolve_padding(p,(f,f),(s,s),(1,1)); osz=output_shape((h,w),(f,f),(s,s),pads,(1,1))
    xp=K.to_channels_last_padded(x,pads)
    view=K.window_view(xp,(f,f),(s,s),(1,1),osz)
    cols=view.reshape(-1,f*f*c)
    w2=np.ascontiguousarray(np.moveaxis(wt.reshape(k,c,-1),0,-1).transpose(1,0,2).reshape(f*f*c,k))
    y=cols@w2
    out,cache=conv2d_forward(x,wt,None,s,p)
    d=rng.standard_normal(out.shape,dtype=np.float32)
    d2=np.ascontiguousarray(np.moveaxis(d,1,-1).reshape(-1,k))
    dcols=(d2@w2.T)
    res=dict(pad=t(lambda: K.to_channels_last_padded(x,pads)), im2col=t(lambda: view.reshape(-1,f*f*c)),
             gemm_f=t(lambda: cols@w2), d2=t(lambda: np.moveaxis(d,1,-1).reshape(-1,k)),
             gemm_dw=t(lambda: cols.T@d2), gemm_dcols=t(lambda: d2@w2.T),
             total_f=t(lambda: conv2d_forward(x,wt,None,s,p)), total_b=t(lambda: conv2d_backward(d,cache)))
    dc=dcols.reshape((n,)+osz+(f,f,c))
    def scatter():
        dxp=np.zeros(xp.shape,np.float32)
        for off in itertools.product(range(f),range(f)):
            sl=(slice(None),)+K._offset_slices(off,(s,s),(1,1),osz)
            dxp[sl]+=dc[(slice(None),)*3+off]
        return dxp
    res['scatter']=t(scatter)
    res['unpad_cf']=t(lambda: np.ascontiguousarray(np.moveaxis(xp,-1,1)))
    print((n,c,h,w,k,f,s,p), " ".join(f"{a}={b:.1f}" for a,b in res.items()), flush=True)
