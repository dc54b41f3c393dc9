"""Mean |alpha(precision) - alpha(fp32)| on the cat photo (skimage.data.chelsea) through
libpetmatte on cuda:0: the reduced-precision target of docs/benchmarks.md.
Usage: PYTHONPATH=bindings/python PETMATTE_LIBRARY=... python3 precision_delta.py MODEL"""
import sys
import numpy as np
from skimage import data
import petmatte
cat = np.ascontiguousarray(data.chelsea())
ref = None
for prec in ("fp32", "fp16", "bf16"):
    with petmatte.Matte(sys.argv[1], device="cuda:0", precision=prec) as m:
        a = np.asarray(m.remove_bg(cat, output="mask"), dtype=np.float64)
        if a.ndim == 3:
            a = a[..., -1]
        if ref is None:
            ref = a
        print(f"{prec}: mean |alpha - alpha_fp32| = {np.abs(a - ref).mean():.4f} levels (max {np.abs(a - ref).max():.0f}); cat box mean {a[40:260,100:320].mean()/255:.4f}")
