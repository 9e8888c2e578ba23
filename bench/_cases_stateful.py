"""bench_norms.py's stateful cases: module objects on single rows, and streaming statistics.

These are the per-call costs an inference service or an online-learning loop pays: parameters
held by an object (simdnorm's modules keep them in C++, PyTorch's in nn.Module tensors), and one
sample at a time through RunningStats against the same Welford update written in NumPy.

Like _cases.py, nothing here imports numpy / torch at module level: functions take the modules.
"""

EPS_LN = 1e-5
EPS_RMS = 1e-6
EPS_BN = 1e-5
EPS_STREAM = 1e-5
HISTORY = 64  # samples a streaming state has seen before the case starts


def _parameters(np, cols, dtype):
    # The same weight / bias as the functional cases of _cases.py.
    return np.linspace(0.5, 2.0, cols, dtype=dtype), np.linspace(-1.0, 1.0, cols, dtype=dtype)


def _torch_module(torch, module, params):
    """An inference nn.Module: parameters copied in, no autograd bookkeeping per call."""
    with torch.no_grad():
        for name, value in params.items():
            getattr(module, name).copy_(torch.from_numpy(value))
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def build_module_case(np, c, x, sn, torch, ort_factory):
    """simdnorm.LayerNorm / RMSNorm / BatchNorm (frozen) called on x, next to the same work by peers.

    Peers: NumPy (BatchNorm: on pre-folded scale / shift, the cheapest NumPy can do), the matching
    torch.nn module on a tensor view of x, ONNX Runtime's one-node session (it has no module notion;
    the session holds the parameters as initializers).
    """
    kind = c["op"].removeprefix("module ")
    dtype = x.dtype
    cols = x.shape[-1]
    x64 = x.astype(np.float64)
    w, b = _parameters(np, cols, dtype)
    out = np.empty_like(x) if c["out"] else None
    runners, skips = {}, {}
    if kind == "layer_norm":
        module = sn.LayerNorm(cols, eps=EPS_LN, dtype=dtype)
        module.load_state_dict({"weight": w, "bias": b})
        d = x64 - x64.mean(-1, keepdims=True)
        ref = d / np.sqrt((d * d).mean(-1, keepdims=True) + EPS_LN) * w + b
        nbytes = 2 * x.nbytes + 2 * w.nbytes

        def np_impl():
            xc = x - x.mean(axis=-1, keepdims=True)
            xc *= 1.0 / np.sqrt(np.mean(np.square(xc), axis=-1, keepdims=True) + dtype.type(EPS_LN))
            xc *= w
            xc += b
            return xc
    elif kind == "rms_norm":
        module = sn.RMSNorm(cols, eps=EPS_RMS, dtype=dtype)
        module.load_state_dict({"weight": w})
        ref = x64 / np.sqrt((x64 * x64).mean(-1, keepdims=True) + EPS_RMS) * w
        nbytes = 2 * x.nbytes + w.nbytes

        def np_impl():
            y = x * (1.0 / np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True) + dtype.type(EPS_RMS)))
            y *= w
            return y
    elif kind == "batch_norm_eval":
        rng = np.random.default_rng(7)
        rm = (rng.standard_normal(cols) * 0.1).astype(dtype)
        rv = (rng.random(cols) + 0.5).astype(dtype)
        bn = sn.BatchNorm(cols, eps=EPS_BN, axis=-1, dtype=dtype)
        bn.load_state_dict({"weight": w, "bias": b, "running_mean": rm, "running_var": rv,
                            "num_batches_tracked": np.array(1, np.int64)})
        module = bn.eval().as_frozen()
        scale64 = w / np.sqrt(rv.astype(np.float64) + EPS_BN)
        ref = (x64 - rm) * scale64 + b
        nbytes = 2 * x.nbytes + 2 * w.nbytes
        # Folded once, outside the loop, and given x's number of dimensions: NumPy broadcasts a
        # (768,) vector against (1, 768) rows at half the speed of a (1, 768) one (2.4 vs 1.2 us).
        scale = (w / np.sqrt(rv + dtype.type(EPS_BN))).astype(dtype)
        shift = (b - rm * scale).astype(dtype).reshape((1,) * (x.ndim - 1) + (cols,))
        scale = scale.reshape(shift.shape)

        def np_impl():
            y = x * scale
            y += shift
            return y
    else:
        raise ValueError(c["op"])

    runners["simdnorm"] = (lambda: module(x)) if out is None else (lambda: module(x, out=out))
    if out is None:
        runners["numpy"] = np_impl
        if torch is not None:
            xt = torch.from_numpy(x)
            nn = torch.nn
            torch_dtype = getattr(torch, dtype.name)
            if kind == "layer_norm":
                tm = _torch_module(torch, nn.LayerNorm(cols, eps=EPS_LN, dtype=torch_dtype), {"weight": w, "bias": b})
            elif kind == "rms_norm" and hasattr(nn, "RMSNorm"):
                tm = _torch_module(torch, nn.RMSNorm(cols, eps=EPS_RMS, dtype=torch_dtype), {"weight": w})
            elif kind == "batch_norm_eval":
                tm = _torch_module(torch, nn.BatchNorm1d(cols, eps=EPS_BN, dtype=torch_dtype), {"weight": w, "bias": b})
                tm.running_mean.copy_(torch.from_numpy(rm))
                tm.running_var.copy_(torch.from_numpy(rv))
            else:
                tm = None
                skips["torch"] = "torch.nn.RMSNorm missing (torch < 2.4)"
            if tm is not None:
                runners["torch"] = lambda: tm(xt)
        if ort_factory is not None:
            try:
                if kind == "layer_norm":
                    sess = ort_factory.session("LayerNormalization", 17, [("X", x)], [("W", w), ("B", b)],
                                               axis=-1, epsilon=EPS_LN)
                elif kind == "rms_norm":
                    from onnx import defs

                    if not defs.has("RMSNormalization"):
                        raise RuntimeError("this onnx has no RMSNormalization (opset 23)")
                    sess = ort_factory.session("RMSNormalization", 23, [("X", x)], [("W", w)], axis=-1,
                                               epsilon=EPS_RMS)
                else:
                    sess = ort_factory.session("BatchNormalization", 15, [("X", x)],
                                               [("W", w), ("B", b), ("RM", rm), ("RV", rv)], epsilon=EPS_BN)
                feed = {"X": x}
                runners["ort"] = lambda: sess.run(None, feed)
            except Exception as e:  # noqa: BLE001
                skips["ort"] = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
    return {"x": x, "bytes": nbytes, "ref": ref, "ref_extra": None, "runners": runners, "skips": skips}


class NumpyWelford:
    """RunningStats' exact mode written in NumPy: Welford's update, then (x - mean) / sqrt(var + eps)."""

    def __init__(self, np, mean, m2, count, eps=EPS_STREAM):
        self.np, self.mean, self.m2, self.count, self.eps = np, mean, m2, count, eps
        self.delta = np.empty_like(mean)  # float64 scratch

    def update(self, x):
        np = self.np
        self.count += 1
        np.subtract(x, self.mean, out=self.delta)
        self.mean += self.delta / self.count
        self.m2 += self.delta * (x - self.mean)

    def update_normalize(self, x, out):
        np = self.np
        self.update(x)
        np.divide(x - self.mean, np.sqrt(self.m2 / self.count + self.eps), out=out, casting="unsafe")
        return out


def build_streaming_case(np, c, dtype, sn):
    """RunningStats.update / update_normalize on one sample of F features, after HISTORY samples.

    The float64 reference is the same state updated with this sample in float64. Each check starts
    from that state again (reset_stats); the timing loop then keeps updating one state.
    """
    features = c["shape"][-1]
    rng = np.random.default_rng(11)
    history = (rng.standard_normal((HISTORY, features)) * 3 + 100).astype(dtype)
    x = (rng.standard_normal(features) * 3 + 100).astype(dtype)
    seen = np.concatenate([history, x[None]]).astype(np.float64)
    mean64, var64 = seen.mean(0), seen.var(0)
    normalize = c["op"] == "streaming update_normalize"
    ref = (x - mean64) / np.sqrt(var64 + EPS_STREAM) if normalize else np.concatenate([mean64, var64])

    stats = sn.RunningStats(features, eps=EPS_STREAM)
    for row in history:
        stats.update(row)
    seeded = stats.state_dict()
    h64 = history.astype(np.float64)
    peer = NumpyWelford(np, h64.mean(0), h64.var(0) * HISTORY, HISTORY)
    peer_seed = (peer.mean.copy(), peer.m2.copy())

    def reset_stats():
        stats.load_state_dict(seeded)
        peer.mean[...], peer.m2[...], peer.count = peer_seed[0], peer_seed[1], HISTORY

    out_sn, out_np = np.empty_like(x), np.empty_like(x)
    if normalize:
        runners = {
            "simdnorm": lambda: stats.update_normalize(x, out=out_sn),
            "numpy": lambda: peer.update_normalize(x, out_np),
        }
        probes = None
    else:
        runners = {"simdnorm": lambda: stats.update(x), "numpy": lambda: peer.update(x)}
        probes = {
            "simdnorm": lambda: np.concatenate([stats.mean, stats.var]),
            "numpy": lambda: np.concatenate([peer.mean, peer.m2 / peer.count]),
        }
    why = "no streaming statistics object to compare with"
    return {
        "x": x,
        "bytes": 2 * x.nbytes + 2 * 2 * 8 * features,  # x in, y out, mean and m2 (float64) read and written
        "ref": ref,
        "ref_extra": None,
        "runners": runners,
        "probes": probes,
        "skips": {"torch": why, "ort": why},
        "reset_stats": reset_stats,
    }
