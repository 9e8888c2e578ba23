"""bench_norms.py's stateful cases: module objects on single rows, and streaming statistics.

These are the per-call costs an inference service or an online-learning loop pays: parameters
held by an object (simdnorm's modules keep them in C++, PyTorch's in nn.Module tensors), and one
sample at a time through RunningStats against the same Welford update written in NumPy.

Like _cases.py, nothing here imports numpy / torch at module level: functions take the modules.
"""

EPS_STREAM = 1e-5
HISTORY = 64  # samples a streaming state has seen before the case starts


def _torch_module(torch, module, params):
    """An inference nn.Module: parameters (and buffers) copied in, no autograd bookkeeping per call."""
    with torch.no_grad():
        for name, value in params.items():
            getattr(module, name).copy_(torch.from_numpy(value))
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def build_module_case(np, c, dtype, sn, torch, ort_factory, build_case):
    """simdnorm.LayerNorm / RMSNorm / frozen BatchNorm called on x, next to the same work by peers.

    The functional case of the same op and shape (build_case) gives x, the float64 reference, the
    parameters, NumPy and ONNX Runtime (a session holds its parameters as initializers); simdnorm
    and PyTorch are swapped for their module objects. BatchNorm's NumPy peer is the fold row's:
    x * scale + shift on pre-folded arrays, the cheapest NumPy can do. out= rows time simdnorm alone.
    """
    kind = c["op"].removeprefix("module ")
    functional = dict(c, op=kind, out=False)
    data = build_case(np, functional, dtype, sn, torch, ort_factory)
    x, params, eps = data["x"], data["params"], data["eps"]
    cols = x.shape[-1]
    if kind == "layer_norm":
        module = sn.LayerNorm(cols, eps=eps, dtype=dtype)
        module.load_state_dict(params)
    elif kind == "rms_norm":
        module = sn.RMSNorm(cols, eps=eps, dtype=dtype)
        module.load_state_dict(params)
    elif kind == "batch_norm_eval":
        bn = sn.BatchNorm(cols, eps=eps, axis=-1, dtype=dtype)
        bn.load_state_dict(dict(params, num_batches_tracked=np.array(1, np.int64)))
        module = bn.eval().as_frozen()
        folded = build_case(np, dict(functional, fold=True), dtype, None, None, None)
        data["runners"]["numpy"] = folded["runners"]["numpy"]
    else:
        raise ValueError(c["op"])

    runners = data["runners"]
    if c["out"]:
        out = np.empty_like(x)
        runners.clear()
        runners["simdnorm"] = lambda: module(x, out=out)
        data["skips"] = {}
        return data
    runners["simdnorm"] = lambda: module(x)
    runners.pop("torch", None)  # the functional call; the module replaces it
    if torch is not None:
        nn, torch_dtype = torch.nn, getattr(torch, dtype.name)
        if kind == "layer_norm":
            tm = _torch_module(torch, nn.LayerNorm(cols, eps=eps, dtype=torch_dtype), params)
        elif kind == "rms_norm" and hasattr(nn, "RMSNorm"):
            tm = _torch_module(torch, nn.RMSNorm(cols, eps=eps, dtype=torch_dtype), params)
        elif kind == "batch_norm_eval":
            tm = _torch_module(torch, nn.BatchNorm1d(cols, eps=eps, dtype=torch_dtype), params)
        else:
            tm = None
            data["skips"]["torch"] = "torch.nn.RMSNorm missing (torch < 2.4)"
        if tm is not None:
            xt = torch.from_numpy(x)
            runners["torch"] = lambda: tm(xt)
    return data


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
