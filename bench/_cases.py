"""bench_norms.py's cases: the op / peer names and constants, the grids, and one case built and checked.

Module objects and streaming statistics are built in _cases_stateful.py.

Nothing here imports numpy / torch / onnxruntime at module level (bench_norms.py pins thread counts
first): functions take the numpy module as an argument, and onnx is imported where it is used.
"""

from _cases_stateful import build_module_case, build_streaming_case

# "modules": simdnorm.LayerNorm / RMSNorm / frozen BatchNorm objects on single rows; "streaming":
# RunningStats.update / update_normalize, one sample per call (_cases_stateful.py).
OPS = ("layer_norm", "rms_norm", "batch_norm_eval", "batch_norm_train", "modules", "streaming")
STREAMING_FEATURES = (16, 64, 256, 768)
# Labels of the thread-scaling loop of multi-thread runs (row["scaling"]): simdnorm's default ISA
# at the run's thread count and at 1 thread, timed alternately in a loop of their own.
SCALED = "simdnorm[threads]"
ONE_THREAD = "simdnorm[1 thread]"
EPS_LN = 1e-5
EPS_RMS = 1e-6
EPS_BN = 1e-5
MOMENTUM = 0.1
PEERS = ("numpy", "torch", "ort")

# --------------------------------------------------------------------------------------------------
# Grids. A case is a dict: op, shape (logical: rows x cols, or N x C x spatial... for BatchNorm),
# layout ("rows", "NF", "NCHW", "NHWC"), out (preallocated output), fold (BatchNorm eval through
# fold_batch_norm + scale_shift instead of batch_norm).


def _case(op, shape, layout="rows", out=False, fold=False):
    return {"op": op, "shape": tuple(shape), "layout": layout, "out": out, "fold": fold}


def _bn_cases(op, shapes):
    cases = []
    for shape in shapes:
        if len(shape) == 2:
            cases.append(_case(op, shape, "NF"))
        else:
            cases.append(_case(op, shape, "NCHW"))
            cases.append(_case(op, shape, "NHWC"))
    return cases


def _module_cases(shape, out=False):
    cases = [_case(f"module {op}", shape, out=out) for op in ("layer_norm", "rms_norm")]
    if not out:  # a frozen BatchNorm on (N, F) rows, channels last
        cases.append(_case("module batch_norm_eval", shape, "NF"))
    return cases


def _streaming_cases(ops, features):
    return [_case(f"streaming {op}", (1, f)) for op in ops for f in features]


def quick_grid(ops):
    cases = []
    rows = [(1, 768), (32, 768), (512, 768), (8192, 1024)]  # last: 64 MiB x + y, past L3
    for op in ("layer_norm", "rms_norm"):
        if op in ops:
            cases += [_case(op, s) for s in rows]
            cases.append(_case(op, rows[-1], out=True))  # same without allocating y (page faults)
    if "batch_norm_eval" in ops:
        cases += _bn_cases("batch_norm_eval", [(1, 768), (8, 256, 14, 14)])
        cases.append(_case("batch_norm_eval", (1, 768), "NF", fold=True))  # NumPy on pre-folded arrays
    if "batch_norm_train" in ops:
        cases += _bn_cases("batch_norm_train", [(256, 768), (8, 256, 14, 14)])
    if "modules" in ops:
        cases += _module_cases((1, 768))
    if "streaming" in ops:
        cases += _streaming_cases(["update_normalize"], (16, 768))
    return cases


def full_grid(ops):
    cases = []
    single = [(1, c) for c in (64, 128, 256, 512, 768, 1024, 2048, 4096)]
    # (8, 1000): rows that are not a whole number of cache lines (4,000 bytes; tuning log 34)
    small = [(8, 768), (16, 768), (32, 768), (8, 1000), (8, 4096), (32, 4096)]
    for op in ("layer_norm", "rms_norm"):
        if op not in ops:
            continue
        cases += [_case(op, s) for s in single]
        cases.append(_case(op, (1, 768), out=True))  # allocation share of a tiny call
        cases += [_case(op, s) for s in small]
        cases.append(_case(op, (512, 768)))  # in cache
        cases.append(_case(op, (1, 1 << 20)))  # one long row
        cases.append(_case(op, (16384, 1024)))  # 64 MiB in, 64 MiB out: DRAM
        cases.append(_case(op, (16384, 1024), out=True))
    if "batch_norm_eval" in ops:
        ev = _bn_cases("batch_norm_eval", [(1, 768), (8, 256, 14, 14), (32, 64, 56, 56)])
        ev += [dict(c, fold=True) for c in ev]
        ev.append(_case("batch_norm_eval", (32, 64, 56, 56), "NCHW", out=True))
        cases += ev
    if "batch_norm_train" in ops:
        # (8, 768), (8, 4096): few rows, where the per-channel work weighs (tuning log 34)
        cases += _bn_cases("batch_norm_train", [(8, 256, 14, 14), (32, 64, 56, 56), (256, 768), (4096, 1024),
                                                (8, 768), (8, 4096)])
    if "modules" in ops:
        cases += _module_cases((1, 768)) + _module_cases((1, 768), out=True) + _module_cases((32, 768))
    if "streaming" in ops:
        cases += _streaming_cases(["update", "update_normalize"], STREAMING_FEATURES)
    return cases


def shapes_grid(ops, shapes):
    cases = []
    for op in ops:
        if op.startswith("batch_norm"):
            cases += _bn_cases(op, [s for s, out in shapes if not out])
        elif op == "modules":
            cases += [m for s, out in shapes if len(s) == 2 for m in _module_cases(s, out)]
        elif op == "streaming":  # 1xF shapes: one sample of F features
            features = [s[1] for s, out in shapes if len(s) == 2 and s[0] == 1]
            cases += _streaming_cases(["update", "update_normalize"], features)
        else:
            cases += [_case(op, s, out=out) for s, out in shapes]
    return cases


def case_name(c):
    if c["op"].startswith("streaming"):
        return f"{c['op']} F={c['shape'][-1]}"
    shape = "x".join(str(d) for d in c["shape"])
    name = f"{c['op']} {shape}"
    if c["layout"] != "rows":
        name += f" {c['layout']}"
    if c["fold"]:
        name += " fold+scale_shift"
    if c["out"]:
        name += " out="
    return name


# --------------------------------------------------------------------------------------------------
# One case: inputs, float64 reference, and a runner per implementation.


def channel_axis(layout, ndim):
    return -1 if layout in ("NHWC", "NF") else 1


def make_input(np, c, dtype):
    """Returns x in its memory layout. BatchNorm NHWC: shape (N, H, W, C), channel axis -1."""
    shape = c["shape"]
    if c["layout"] == "NHWC":
        shape = (shape[0],) + tuple(shape[2:]) + (shape[1],)
    rng = np.random.default_rng(12345)
    x = rng.standard_normal(shape, dtype=np.float32) * 2.0 + 0.5
    return np.ascontiguousarray(x, dtype=dtype)


def build_case(np, c, dtype, sn, torch, ort_factory):
    """Returns dict with x, bytes, ref (float64), runners {impl: callable}, skips, params (weight, bias,
    running stats as NumPy arrays) and eps."""
    op = c["op"]
    if op.startswith("streaming "):
        return build_streaming_case(np, c, dtype, sn)
    if op.startswith("module "):
        return build_module_case(np, c, dtype, sn, torch, ort_factory, build_case)
    x = make_input(np, c, dtype)
    x64 = x.astype(np.float64)
    runners, skips = {}, {}
    if op in ("layer_norm", "rms_norm"):
        cols = x.shape[-1]
        w = np.linspace(0.5, 2.0, cols, dtype=dtype)
        b = np.linspace(-1.0, 1.0, cols, dtype=dtype)
        nbytes = 2 * x.nbytes + (2 if op == "layer_norm" else 1) * w.nbytes
        if op == "layer_norm":
            d = x64 - x64.mean(-1, keepdims=True)
            ref = d / np.sqrt((d * d).mean(-1, keepdims=True) + EPS_LN) * w + b

            def np_impl():
                xc = x - x.mean(axis=-1, keepdims=True)
                var = np.mean(np.square(xc), axis=-1, keepdims=True)
                xc *= 1.0 / np.sqrt(var + dtype.type(EPS_LN))
                xc *= w
                xc += b
                return xc
        else:
            ref = x64 / np.sqrt((x64 * x64).mean(-1, keepdims=True) + EPS_RMS) * w

            def np_impl():
                ms = np.mean(np.square(x), axis=-1, keepdims=True)
                y = x * (1.0 / np.sqrt(ms + dtype.type(EPS_RMS)))
                y *= w
                return y

        ref_extra = None
        if sn is not None:
            out = np.empty_like(x) if c["out"] else None
            if op == "layer_norm":
                if out is None:
                    sn_fn = lambda: sn.layer_norm(x, w, b, eps=EPS_LN)
                else:
                    sn_fn = lambda: sn.layer_norm(x, w, b, eps=EPS_LN, out=out)
            else:
                if out is None:
                    sn_fn = lambda: sn.rms_norm(x, w, eps=EPS_RMS)
                else:
                    sn_fn = lambda: sn.rms_norm(x, w, eps=EPS_RMS, out=out)
            runners["simdnorm"] = sn_fn
        if not c["out"]:
            runners["numpy"] = np_impl
            if torch is not None:
                xt, wt, bt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b)
                F = torch.nn.functional
                if op == "layer_norm":
                    runners["torch"] = lambda: F.layer_norm(xt, (cols,), wt, bt, EPS_LN)
                elif hasattr(F, "rms_norm"):
                    runners["torch"] = lambda: F.rms_norm(xt, (cols,), wt, EPS_RMS)
                else:
                    skips["torch"] = "torch.nn.functional.rms_norm missing (torch < 2.4)"
            if ort_factory is not None:
                try:
                    if op == "layer_norm":
                        sess = ort_factory.session(
                            "LayerNormalization", 17, [("X", x)], [("W", w), ("B", b)], axis=-1, epsilon=EPS_LN
                        )
                    else:
                        from onnx import defs

                        if not defs.has("RMSNormalization"):
                            raise RuntimeError("this onnx has no RMSNormalization (opset 23)")
                        sess = ort_factory.session(
                            "RMSNormalization", 23, [("X", x)], [("W", w)], axis=-1, epsilon=EPS_RMS
                        )
                    feed = {"X": x}
                    runners["ort"] = lambda: sess.run(None, feed)
                except Exception as e:  # noqa: BLE001
                    skips["ort"] = str(e)[:200]
        params = {"weight": w, "bias": b} if op == "layer_norm" else {"weight": w}
        eps = EPS_LN if op == "layer_norm" else EPS_RMS
        return {"x": x, "bytes": nbytes, "ref": ref, "ref_extra": ref_extra, "runners": runners, "skips": skips,
                "params": params, "eps": eps}

    # ---- BatchNorm ----
    axis = channel_axis(c["layout"], x.ndim)
    ch = x.shape[axis]
    bshape = [1] * x.ndim
    bshape[axis] = ch
    red = tuple(i for i in range(x.ndim) if i != axis % x.ndim)
    count = x.size // ch
    rng = np.random.default_rng(7)
    rm0 = (rng.standard_normal(ch) * 0.1).astype(dtype)
    rv0 = (rng.random(ch) + 0.5).astype(dtype)
    w = np.linspace(0.5, 2.0, ch, dtype=dtype)
    b = np.linspace(-1.0, 1.0, ch, dtype=dtype)
    nbytes = 2 * x.nbytes + 4 * w.nbytes + (2 * w.nbytes if op == "batch_norm_train" else 0)
    training = op == "batch_norm_train"
    if training:
        m64 = x64.mean(red)
        v64 = x64.var(red)
        ref = (x64 - m64.reshape(bshape)) / np.sqrt(v64.reshape(bshape) + EPS_BN) * w.reshape(bshape) + b.reshape(
            bshape
        )
        ref_rm = (1 - MOMENTUM) * rm0.astype(np.float64) + MOMENTUM * m64
        ref_rv = (1 - MOMENTUM) * rv0.astype(np.float64) + MOMENTUM * v64 * count / max(count - 1, 1)
        ref_extra = (ref_rm, ref_rv)
    else:
        scale64 = w / np.sqrt(rv0.astype(np.float64) + EPS_BN)
        ref = (x64 - rm0.reshape(bshape)) * scale64.reshape(bshape) + b.reshape(bshape)
        ref_extra = None

    # Each implementation gets its own running stats (training mutates them).
    stats = {}

    def fresh_stats(key):
        stats[key] = (rm0.copy(), rv0.copy())
        return stats[key]

    rm_np, rv_np = fresh_stats("numpy")
    wb, bb = w.reshape(bshape), b.reshape(bshape)
    if training:
        unbias = dtype.type(count / max(count - 1, 1))

        def np_impl():
            mean = x.mean(axis=red, keepdims=True)
            xc = x - mean
            var = np.mean(np.square(xc), axis=red, keepdims=True)
            xc *= wb / np.sqrt(var + dtype.type(EPS_BN))
            xc += bb
            np.multiply(rm_np, dtype.type(1 - MOMENTUM), out=rm_np)
            np.add(rm_np, dtype.type(MOMENTUM) * mean.reshape(ch), out=rm_np)
            np.multiply(rv_np, dtype.type(1 - MOMENTUM), out=rv_np)
            np.add(rv_np, dtype.type(MOMENTUM) * unbias * var.reshape(ch), out=rv_np)
            return xc
    elif c["fold"]:  # simdnorm's scale_shift on folded arrays: NumPy gets them folded too
        scale_np = (w / np.sqrt(rv_np + dtype.type(EPS_BN))).astype(dtype)
        shift_np = (b - rm_np * scale_np).astype(dtype).reshape(bshape)
        scale_np = scale_np.reshape(bshape)

        def np_impl():
            y = x * scale_np
            y += shift_np
            return y
    else:

        def np_impl():
            scale = w / np.sqrt(rv_np + dtype.type(EPS_BN))
            shift = b - rm_np * scale
            y = x * scale.reshape(bshape)
            y += shift.reshape(bshape)
            return y

    if sn is not None:
        rm_sn, rv_sn = fresh_stats("simdnorm")
        out = np.empty_like(x) if c["out"] else None
        if c["fold"]:
            scale, shift = sn.fold_batch_norm(rm_sn, rv_sn, w, b, eps=EPS_BN)
            if out is None:
                sn_fn = lambda: sn.scale_shift(x, scale, shift, axis=axis)
            else:
                sn_fn = lambda: sn.scale_shift(x, scale, shift, axis=axis, out=out)
        elif out is None:
            sn_fn = lambda: sn.batch_norm(
                x, rm_sn, rv_sn, w, b, training=training, momentum=MOMENTUM, eps=EPS_BN, axis=axis
            )
        else:
            sn_fn = lambda: sn.batch_norm(
                x, rm_sn, rv_sn, w, b, training=training, momentum=MOMENTUM, eps=EPS_BN, axis=axis, out=out
            )
        runners["simdnorm"] = sn_fn
    if not c["out"]:
        runners["numpy"] = np_impl
    if not c["out"] and not c["fold"]:
        if torch is not None:
            rm_t, rv_t = (torch.from_numpy(a) for a in fresh_stats("torch"))
            wt, bt = torch.from_numpy(w), torch.from_numpy(b)
            xt = torch.from_numpy(x)
            if c["layout"] == "NHWC":
                xt = xt.permute(0, x.ndim - 1, *range(1, x.ndim - 1))  # NCHW view, channels_last strides
            F = torch.nn.functional
            runners["torch"] = lambda: F.batch_norm(xt, rm_t, rv_t, wt, bt, training, MOMENTUM, EPS_BN)
        if ort_factory is not None:
            if c["layout"] == "NHWC":
                skips["ort"] = "BatchNormalization takes NCHW only (a Transpose pair would measure transposes)"
            else:
                try:
                    rm_o, rv_o = fresh_stats("ort")
                    if training:
                        # Running stats as inputs so each call sees current values; outputs discarded.
                        sess = ort_factory.session(
                            "BatchNormalization",
                            15,
                            [("X", x)],
                            [("W", w), ("B", b), ("RM", rm_o), ("RV", rv_o)],
                            n_outputs=3,
                            epsilon=EPS_BN,
                            momentum=1 - MOMENTUM,
                            training_mode=1,
                        )
                    else:
                        sess = ort_factory.session(
                            "BatchNormalization",
                            15,
                            [("X", x)],
                            [("W", w), ("B", b), ("RM", rm_o), ("RV", rv_o)],
                            epsilon=EPS_BN,
                        )
                    feed = {"X": x}
                    runners["ort"] = lambda: sess.run(None, feed)
                    if training:
                        sess.run(None, feed)  # some builds fail only at run time
                except Exception as e:  # noqa: BLE001
                    skips["ort"] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
                    runners.pop("ort", None)
    return {
        "x": x,
        "bytes": nbytes,
        "ref": ref,
        "ref_extra": ref_extra,
        "runners": runners,
        "skips": skips,
        "stats": stats,
        "reset_stats": lambda: [(s[0].__setitem__(..., rm0), s[1].__setitem__(..., rv0)) for s in stats.values()],
        "layout": c["layout"],
        "params": {"weight": w, "bias": b, "running_mean": rm0, "running_var": rv0},
        "eps": EPS_BN,
    }


def to_numpy(np, impl, result, layout):
    if isinstance(result, (tuple, list)):
        result = result[0]
    if impl == "torch":
        if layout == "NHWC":
            result = result.permute(0, *range(2, result.ndim), 1)
        result = result.contiguous().numpy()
    return np.asarray(result)


def check(np, impl, case_data, fn):
    """Max abs error of one fresh call vs the float64 reference (plus running stats in training)."""
    if "reset_stats" in case_data:
        case_data["reset_stats"]()
    result = fn()
    probe = (case_data.get("probes") or {}).get(impl)  # calls returning nothing: what they changed
    y = to_numpy(np, impl, probe() if probe else result, case_data.get("layout"))
    ref = case_data["ref"]
    if y.shape != ref.shape:
        return float("inf")
    err = float(np.max(np.abs(y.astype(np.float64) - ref))) if ref.size else 0.0
    extra = case_data.get("ref_extra")
    if extra is not None and impl in case_data.get("stats", {}) and impl != "ort":
        rm, rv = case_data["stats"][impl]
        err = max(err, float(np.max(np.abs(rm - extra[0]))), float(np.max(np.abs(rv - extra[1]))))
    if np.isnan(err):
        err = float("inf")
    return err
