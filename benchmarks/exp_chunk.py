import os, time, statistics
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
import numpy as np
from cnnlab.functional import _kernels as K
def t(fn, r=5):
    fn(); ts=[]
    for _ in range(r):
        t0=time.perf_counter(); fn(); ts.append(time.perf_counter()-t0)
    return statistics.median(ts)*1e3
for (n,c,h,w,k,f,p) in [(64,32,32,32,64,3,1),(64,64,16,16,128,3,1),(32,128,8,8,256,3,1)]:
    rng=np.random.default_rng(0)
    x=rng.standard_normal((n,c,h,w),dtype=np.float32); wt=rng.standard_normal((k,c,f,f),dtype=np.float32)
    pads=((p,p),(p,p)); osz=(h,w)
    xp=K.to_channels_last_padded(x,pads)
    T=f*f*c
    w2=np.ascontiguousarray(np.moveaxis(wt.reshape(k,c,-1),0,-1).transpose(1,0,2).reshape(T,k))
    def full():
        cols=K.window_view(xp,(f,f),(1,1),(1,1),osz).reshape(-1,T); return cols@w2
    res={'full':t(full)}
    y=np.empty((n*h*w,k),np.float32)
    for nb in (1,2,4,8,16):
        buf=np.empty((nb*h*w,T),np.float32)
        bview=buf.reshape((nb,h,w,f,f,c))
        def chunked():
            for i in range(0,n,nb):
                np.copyto(bview, K.window_view(xp[i:i+nb],(f,f),(1,1),(1,1),osz))
                np.matmul(buf, w2, out=y[i*h*w:(i+nb)*h*w])
        res[f'chunk{nb}']=t(chunked)
    print((n,c,h,w,k), " ".join(f"{a}={b:.1f}" for a,b in res.items()), flush=True)
