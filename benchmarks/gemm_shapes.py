"""GEMM efficiency of the shapes the conv path issues (for optimizing; not a benchmark table)."""
import os, time, statistics
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
import numpy as np
def t(fn, r=5):
    fn(); ts=[]
    for _ in range(r):
        t0=time.perf_counter(); fn(); ts.append(time.perf_counter()-t0)
    return statistics.median(ts)
rng=np.random.default_rng(0)
for M,Kd,N in [(65536,288,64),(16384,576,128),(2048,1152,256),(48400,363,64)]:
    A=rng.standard_normal((M,Kd),dtype=np.float32); B=rng.standard_normal((Kd,N),dtype=np.float32)
    D=rng.standard_normal((M,N),dtype=np.float32)
    fl=2*M*Kd*N/1e9
    r={}
    r['A@B']=t(lambda: A@B)
    At=np.ascontiguousarray(A.T)
    r['BT@AT']=t(lambda: B.T@At)
    r['AT@D (dw)']=t(lambda: A.T@D)
    r['B@DT (dcolsT)']=t(lambda: B@D.T)
    r['D@BT (dcols)']=t(lambda: D@B.T)
    ch=max(1,M//8)
    out=np.empty((M,N),np.float32)
    def chunked():
        for i in range(0,M,ch): np.matmul(A[i:i+ch],B,out=out[i:i+ch])
    r['A@B chunk8']=t(chunked)
    print((M,Kd,N), " ".join(f"{k}={fl/v:.0f}GF/s" for k,v in r.items()), flush=True)
