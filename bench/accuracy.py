"""Float32 accuracy of simdnorm on offset data, every ISA: max abs error of the normalized output
against a float64 NumPy reference for rows c + N(0, 1). Usage: python bench/accuracy.py
"""

import numpy as np

import simdnorm
rng = np.random.default_rng(1)
print("| ISA | c | LayerNorm 64x768 | LayerNorm 1x1M | LN axis=(1,) 4x96x14x14 | BatchNorm train 8x64x14x14 |")
print("|---|---|---|---|---|---|")
for isa in simdnorm.available_isas():
    with simdnorm.use_isa(isa):
        for c in (0.0, 1e3, 1e6):
            row=[]
            for shape, kind in [((64,768),'ln'),((1,1<<20),'ln'),((4,96,14,14),'cf'),((8,64,14,14),'bn')]:
                x=(rng.standard_normal(shape)+c).astype(np.float32); xd=x.astype(np.float64)
                ax = -1 if kind=='ln' else (1 if kind=='cf' else (0,2,3))
                ref=(xd-xd.mean(ax,keepdims=True))/np.sqrt(xd.var(ax,keepdims=True)+1e-5)
                if kind=='ln': y=simdnorm.layer_norm(x)
                elif kind=='cf': y=simdnorm.layer_norm(x,axis=(1,))
                else: y=simdnorm.batch_norm(x,None,None,training=True)
                row.append(f"{np.abs(y-ref).max():.2e}")
            print(f"| {isa} | {c:g} | "+" | ".join(row)+" |")
