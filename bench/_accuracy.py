"""Float32 accuracy on offset data: max abs error of the normalized output against a float64 NumPy
reference for inputs c + N(0, 1), c up to 1e6, on every kernel variant (issue 4: <= 4e-6).

Used by bench_norms.py (the "Accuracy" section and its target) and by accuracy.py (alone).
Nothing here imports numpy at module level: bench_norms.py pins thread counts first.
"""

OFFSETS = (0.0, 1e3, 1e6)
EPS = 1e-5
# (label, shape, how simdnorm is called, reduction axes of the float64 reference)
CASES = (
    ("LayerNorm 64x768", (64, 768), lambda sn, x: sn.layer_norm(x, eps=EPS), -1),
    ("LayerNorm 1x1M", (1, 1 << 20), lambda sn, x: sn.layer_norm(x, eps=EPS), -1),
    ("LayerNorm axis=(1,) 4x96x14x14", (4, 96, 14, 14), lambda sn, x: sn.layer_norm(x, axis=(1,), eps=EPS), 1),
    ("BatchNorm train 8x64x14x14", (8, 64, 14, 14),
     lambda sn, x: sn.batch_norm(x, None, None, training=True, eps=EPS), (0, 2, 3)),
    ("BatchNorm train NHWC 8x14x14x64", (8, 14, 14, 64),
     lambda sn, x: sn.batch_norm(x, None, None, training=True, eps=EPS, axis=-1), (0, 1, 2)),
)


def offset_errors(np, sn, isas, seed=1):
    """{isa: {"<case> c=<offset>": max abs error}} over CASES x OFFSETS, float32 inputs."""
    rng = np.random.default_rng(seed)
    inputs = []
    for label, shape, call, axes in CASES:
        for c in OFFSETS:
            x = (rng.standard_normal(shape) + c).astype(np.float32)
            xd = x.astype(np.float64)
            ref = (xd - xd.mean(axes, keepdims=True)) / np.sqrt(xd.var(axes, keepdims=True) + EPS)
            inputs.append((f"{label} c={c:g}", call, x, ref))
    errors = {}
    for isa in isas:
        with sn.use_isa(isa):
            errors[isa] = {name: float(np.abs(call(sn, x) - ref).max()) for name, call, x, ref in inputs}
    return errors


def render(errors):
    """A markdown table: one row per ISA and offset, one column per case."""
    labels = [label for label, *_ in CASES]
    lines = ["| ISA | c | " + " | ".join(labels) + " |", "|---|---:|" + "---:|" * len(labels)]
    for isa, by_case in errors.items():
        for c in OFFSETS:
            cells = [f"{by_case[f'{label} c={c:g}']:.1e}" for label in labels]
            lines.append(f"| {isa} | {c:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
