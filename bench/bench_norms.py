#!/usr/bin/env python3
"""Benchmark simdnorm's LayerNorm / RMSNorm / BatchNorm against NumPy, PyTorch and ONNX Runtime.

Run ``python bench/bench_norms.py`` for the quick grid (about a minute on 2 cores) or add ``--full``
for the long one. ``--help`` lists every option; bench/README.md explains the columns.

Method: thread counts are pinned through the environment *before* NumPy / torch are imported (one
child process per ``--threads`` entry when there are several), and again through each library's
own setter. Every measurement warms up, then takes ``--repeat`` samples of a loop calibrated to
last about ``--sample-ms``; a sample is the loop time divided by its call count (perf_counter_ns),
and the table reports the median sample in microseconds per call. Each implementation's output is
checked once against a float64 NumPy reference (max abs error column), so a fast wrong answer shows.

PyTorch, ONNX Runtime (+ onnx) and matplotlib are optional: a missing one is reported and skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import targets  # bench/ is sys.path[0] when run as a script; neither imports numpy
from _machine import cpu_model

# Nothing here may import numpy / torch at module level: thread counts are pinned first (main()).

OPS = ("layer_norm", "rms_norm", "batch_norm_eval", "batch_norm_train")
# Labels of the thread-scaling loop of multi-thread runs (row["scaling"]): simdnorm's default ISA
# at the run's thread count and at 1 thread, timed alternately in a loop of their own.
SCALED = "simdnorm[threads]"
ONE_THREAD = "simdnorm[1 thread]"
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "SIMDNORM_NUM_THREADS",
)
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


def quick_grid(ops):
    cases = []
    rows = [(1, 768), (32, 768), (512, 768), (8192, 1024)]  # last: 64 MiB x + y, past L3
    for op in ("layer_norm", "rms_norm"):
        if op in ops:
            cases += [_case(op, s) for s in rows]
            cases.append(_case(op, rows[-1], out=True))  # same without allocating y (page faults)
    if "batch_norm_eval" in ops:
        cases += _bn_cases("batch_norm_eval", [(1, 768), (8, 256, 14, 14)])
    if "batch_norm_train" in ops:
        cases += _bn_cases("batch_norm_train", [(256, 768), (8, 256, 14, 14)])
    return cases


def full_grid(ops):
    cases = []
    single = [(1, c) for c in (64, 128, 256, 512, 768, 1024, 2048, 4096)]
    small = [(8, 768), (16, 768), (32, 768), (8, 4096), (32, 4096)]
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
        ev += [dict(c, fold=True) for c in ev if c["layout"] != "NF"]
        ev.append(_case("batch_norm_eval", (32, 64, 56, 56), "NCHW", out=True))
        cases += ev
    if "batch_norm_train" in ops:
        cases += _bn_cases("batch_norm_train", [(8, 256, 14, 14), (32, 64, 56, 56), (256, 768), (4096, 1024)])
    return cases


def shapes_grid(ops, shapes):
    cases = []
    for op in ops:
        if op.startswith("batch_norm"):
            cases += _bn_cases(op, [s for s, out in shapes if not out])
        else:
            cases += [_case(op, s, out=out) for s, out in shapes]
    return cases


def case_name(c):
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
# Command line


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Examples:\n"
        "  python bench/bench_norms.py\n"
        "  python bench/bench_norms.py --ops rms_norm --shapes 1x4096,64x4096 --threads 1 --isa best\n"
        "  python bench/bench_norms.py --full --json new.json --plot new.png\n"
        "  python bench/bench_norms.py --compare old.json new.json --threshold 5\n",
    )
    p.add_argument("--ops", default=",".join(OPS), help="comma list from: " + ", ".join(OPS))
    p.add_argument(
        "--shapes",
        default=None,
        help="comma list like 1x768,32x768,16384x1024:out; 2-D = rows x cols (BatchNorm: N x F), :out = with out= "
        "(LayerNorm / RMSNorm), "
        "4-D = N x C x H x W (BatchNorm runs NCHW and NHWC). Overrides the grid.",
    )
    p.add_argument("--threads", default="1,all", help="comma list of thread counts, 'all' = every usable CPU")
    p.add_argument("--repeat", type=int, default=21, help="timed samples per measurement (median reported)")
    p.add_argument("--sample-ms", type=float, default=2.0, help="target duration of one timed sample")
    p.add_argument("--isa", default="all", help="all | best (the dispatched default) | an ISA name")
    p.add_argument("--dtype", default="float32", help="float32 and/or float64, comma list")
    p.add_argument("--full", action="store_true", help="long grid (several minutes)")
    p.add_argument("--peers", default=",".join(PEERS), help="comma list from numpy,torch,ort (or 'none')")
    p.add_argument("--json", metavar="PATH", help="write all results (with machine info) as JSON")
    p.add_argument("--plot", metavar="PATH.png", help="bar chart of the results (needs matplotlib)")
    p.add_argument("--compare", nargs=2, metavar=("OLD.json", "NEW.json"), help="print what got slower, then exit")
    p.add_argument("--threshold", type=float, default=5.0, help="--compare: percent slowdown to report")
    p.add_argument("--fail-on-regression", action="store_true", help="--compare: exit 1 if anything got slower")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--_child-out", dest="child_out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    bad = [o for o in args.ops if o not in OPS]
    if bad:
        p.error(f"unknown op(s) {bad}; choose from {OPS}")
    args.peers = [] if args.peers == "none" else [x.strip() for x in args.peers.split(",") if x.strip()]
    if any(x not in PEERS for x in args.peers):
        p.error(f"--peers: choose from {PEERS}")
    args.dtypes = [d.strip() for d in args.dtype.split(",")]
    if any(d not in ("float32", "float64") for d in args.dtypes):
        p.error("--dtype: float32 and/or float64")
    if args.shapes:
        try:
            args.shape_list = []
            for s in args.shapes.split(","):
                s = s.strip().lower()
                if not s:
                    continue
                out = s.endswith(":out")  # e.g. 16384x1024:out times the out= variant (LayerNorm / RMSNorm)
                args.shape_list.append((tuple(int(d) for d in s.removesuffix(":out").split("x")), out))
        except ValueError:
            p.error("--shapes: like 1x768,32x768:out or 8x256x14x14")
    else:
        args.shape_list = None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    args.thread_list = []
    for t in args.threads.split(","):
        t = t.strip()
        n = usable if t == "all" else int(t)
        if n < 1:
            p.error("--threads: counts must be >= 1")
        if n not in args.thread_list:
            args.thread_list.append(n)
    if args.repeat < 3:
        p.error("--repeat: at least 3")
    return args


def pin_threads(n):
    """Must run before numpy / torch / onnxruntime are imported."""
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)


def log(args, msg):
    if not args.quiet:
        print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# Machine information


def busy_cpu_seconds():
    """CPU seconds spent busy by the whole machine so far (from /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    t = os.times()
    return t.user + t.system


def cache_sizes():
    """(L2 bytes per core, L3 bytes) from sysfs, with conservative defaults."""
    sizes = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in os.listdir(base):
            if not entry.startswith("index"):
                continue
            with open(f"{base}/{entry}/level") as f:
                level = int(f.read())
            with open(f"{base}/{entry}/type") as f:
                kind = f.read().strip()
            with open(f"{base}/{entry}/size") as f:
                text = f.read().strip()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
            value = int(text.rstrip("KMG")) * mult
            if kind in ("Unified", "Data"):
                sizes[level] = value
    except (OSError, ValueError):
        pass
    return sizes.get(2, 1 << 20), sizes.get(3, 32 << 20)


# --------------------------------------------------------------------------------------------------
# Timing


def measure(fn, repeat, sample_ms, max_total_s=8.0):
    """Median-of-samples time of fn() in ns per call, plus spread. fn is warmed up first."""
    import gc

    clock = time.perf_counter_ns
    # Warm-up: at least 3 calls and ~20 ms, which also estimates the per-call time.
    calls, start = 0, clock()
    while True:
        fn()
        calls += 1
        elapsed = clock() - start
        if calls >= 3 and elapsed > 20e6:
            break
        if calls >= 3 and elapsed > 200e6:
            break
    per_call = elapsed / calls
    inner = max(1, int(sample_ms * 1e6 / max(per_call, 1.0)))
    samples = []
    budget_end = clock() + max_total_s * 1e9
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            rng = range(inner)
            t0 = clock()
            for _ in rng:
                fn()
            t1 = clock()
            samples.append((t1 - t0) / inner)
            if len(samples) >= 3 and t1 > budget_end:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    samples.sort()
    n = len(samples)
    return {
        "median_ns": samples[n // 2] if n % 2 else 0.5 * (samples[n // 2 - 1] + samples[n // 2]),
        "min_ns": samples[0],
        "p25_ns": samples[n // 4],
        "p75_ns": samples[(3 * n) // 4],
        "samples": n,
        "inner": inner,
    }


@contextlib.contextmanager
def one_thread(sn, isa):
    """simdnorm at 1 thread on `isa` for the duration (the caller's thread count restored after)."""
    before = sn.get_num_threads()
    sn.set_num_threads(1)
    try:
        with sn.use_isa(isa):
            yield
    finally:
        sn.set_num_threads(before)


def measure_interleaved(entries, repeat, sample_ms, max_total_s=15.0, pause_s=0.0, busy_after=None, warm_s=0.0):
    """Like measure() for several implementations, taking their samples round-robin.

    entries: list of (label, fn, context_factory or None). Interleaving spreads slow drifts of a
    shared, noisy machine (other jobs, frequency changes) over every implementation alike, so the
    ratios stay meaningful even when absolute times wander. pause_s: sleep after every sample;
    busy_after: {label: seconds} of busy-waiting on this thread after that implementation's
    samples (see the caller); warm_s: untimed calls for at least this long before each sample
    (default: one). Returns {label: stats or exception}.
    """
    busy_after = busy_after or {}
    import contextlib
    import gc

    clock = time.perf_counter_ns
    plans, results = [], {}
    for label, fn, ctx in entries:
        ctx = ctx or contextlib.nullcontext
        try:
            with ctx():
                calls, start = 0, clock()
                while True:
                    fn()
                    calls += 1
                    elapsed = clock() - start
                    if calls >= 3 and elapsed > 20e6:
                        break
            per_call = elapsed / calls
            plans.append((label, fn, ctx, max(1, int(sample_ms * 1e6 / max(per_call, 1.0)))))
            results[label] = []
        except Exception as e:  # noqa: BLE001
            results[label] = e
    budget_end = clock() + max_total_s * 1e9
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeat):
            for label, fn, ctx, inner in plans:
                with ctx():
                    loop = range(inner)
                    fn()  # untimed: wakes thread pools that slept through the previous samples
                    if warm_s:
                        warm_end = clock() + warm_s * 1e9
                        while clock() < warm_end:
                            fn()
                    t0 = clock()
                    for _ in loop:
                        fn()
                    t1 = clock()
                results[label].append((t1 - t0) / inner)
                if label in busy_after:
                    until = clock() + busy_after[label] * 1e9
                    while clock() < until:
                        pass
                if pause_s:
                    time.sleep(pause_s)
            if r >= 2 and clock() > budget_end:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    out = {}
    for label, fn, ctx, inner in plans:
        samples = sorted(results[label])
        n = len(samples)
        out[label] = {
            "median_ns": samples[n // 2] if n % 2 else 0.5 * (samples[n // 2 - 1] + samples[n // 2]),
            "min_ns": samples[0],
            "p25_ns": samples[n // 4],
            "p75_ns": samples[(3 * n) // 4],
            "samples": n,
            "inner": inner,
        }
    for label, value in results.items():
        if isinstance(value, Exception):
            out[label] = value
    return out


def copy_ceilings(np, threads, l2, l3, repeat, sample_ms):
    """np.copyto bandwidth (bytes read + written per second) at L2, L3 and DRAM sizes.

    With several threads each thread loops over its own buffers (NumPy releases the GIL for plain
    copies); the result is total bytes over wall time, so it is an aggregate ceiling.
    """
    import threading

    levels = {
        "L2": max(16 << 10, l2 // 4),  # src + dst = half of one core's L2
        "L3": max(1 << 20, l3 // 8),  # src + dst = a quarter of L3
        "DRAM": max(128 << 20, 4 * l3),  # far beyond L3
    }
    out = {}
    for level, nbytes in levels.items():
        per_thread = nbytes if level != "DRAM" else nbytes // threads
        if level == "L3":
            per_thread = nbytes // threads
        bufs = [(np.ones(per_thread // 4, np.float32), np.empty(per_thread // 4, np.float32)) for _ in range(threads)]
        if threads == 1:
            src, dst = bufs[0]
            r = measure(lambda dst=dst, src=src: np.copyto(dst, src), repeat, sample_ms)
            gbps = 2 * src.nbytes / r["median_ns"]
        else:
            # Aggregate: all threads copy concurrently for a fixed iteration count; best of a few.
            src0, dst0 = bufs[0]
            one = measure(lambda dst0=dst0, src0=src0: np.copyto(dst0, src0), 3, 1.0)["median_ns"]
            iters = max(1, int(20e6 / max(1.0, one)))
            results = []
            for _ in range(max(3, repeat // 4)):
                barrier = threading.Barrier(threads + 1)

                def work(src, dst, barrier=barrier, iters=iters):
                    barrier.wait()
                    for _ in range(iters):
                        np.copyto(dst, src)

                ts = [threading.Thread(target=work, args=b) for b in bufs]
                for t in ts:
                    t.start()
                barrier.wait()
                t0 = time.perf_counter_ns()
                for t in ts:
                    t.join()
                results.append(time.perf_counter_ns() - t0)
            results.sort()
            gbps = 2 * per_thread * threads * iters / results[len(results) // 2]
        out[level] = {"bytes_per_copy": per_thread * threads, "GBps": gbps}
        del bufs
    return out


# --------------------------------------------------------------------------------------------------
# Peers: loaders (each returns (module or None, reason))


def load_torch(threads):
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure means "skip"
        return None, f"import torch failed: {type(e).__name__}: {e}"
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return torch, ""


def load_ort():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except Exception as e:  # noqa: BLE001
        return None, f"import onnxruntime/onnx failed: {type(e).__name__}: {e}"
    try:
        onnxruntime.set_default_logger_severity(3)
    except Exception:  # noqa: BLE001
        pass
    return onnxruntime, ""


class OrtFactory:
    """Builds single-node ONNX models with onnx.helper and opens CPU sessions."""

    def __init__(self, ort, threads):
        import onnx

        self.ort, self.onnx, self.threads = ort, onnx, threads

    def session(self, op_type, opset, inputs, initializers, n_outputs=1, **attrs):
        """inputs: list of (name, np.ndarray) fed at run time; initializers: list of (name, array)."""
        from onnx import TensorProto, helper, numpy_helper

        elem = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}
        graph_inputs = [helper.make_tensor_value_info(n, elem[a.dtype.name], list(a.shape)) for n, a in inputs]
        outs = ["Y"] + [f"out{i}" for i in range(1, n_outputs)]
        node = helper.make_node(op_type, [n for n, _ in inputs] + [n for n, _ in initializers], outs, **attrs)
        graph_outputs = [helper.make_tensor_value_info("Y", elem[inputs[0][1].dtype.name], None)]
        graph_outputs += [helper.make_tensor_value_info(o, elem[inputs[0][1].dtype.name], None) for o in outs[1:]]
        inits = [numpy_helper.from_array(a, n) for n, a in initializers]
        graph = helper.make_graph([node], f"bench_{op_type}", graph_inputs, graph_outputs, inits)
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        # Samples are interleaved across implementations: ORT's intra-op workers otherwise spin on
        # after each run and take the cores from the next implementation's samples (measured:
        # simdnorm layer_norm 512x768 at 2 threads 30 us alone, 66 us with ORT in the same loop).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        errors = []
        # Newest onnx may stamp an IR version this onnxruntime does not read yet: step down.
        for ir in (None, 11, 10, 9, 8):
            model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
            if ir is not None:
                if ir >= model.ir_version:
                    continue
                model.ir_version = ir
            try:
                return self.ort.InferenceSession(
                    model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"]
                )
            except Exception as e:  # noqa: BLE001
                errors.append(f"ir={model.ir_version}: {str(e).splitlines()[0][:160]}")
        raise RuntimeError("; ".join(errors[-2:]))


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
    """Returns dict with x, bytes, ref (float64), runners {impl: (callable, to_numpy, checker)}, skips."""
    op = c["op"]
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
        return {"x": x, "bytes": nbytes, "ref": ref, "ref_extra": ref_extra, "runners": runners, "skips": skips}

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
    if not c["out"] and not c["fold"]:
        runners["numpy"] = np_impl
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
    y = to_numpy(np, impl, fn(), case_data.get("layout"))
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


# --------------------------------------------------------------------------------------------------
# The run (one thread count, inside the process whose threads were pinned)


def run_suite(args, threads):
    import numpy as np

    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "numpy": np.__version__,
        "threads": threads,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    load_start = (busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter())
    l2, l3 = cache_sizes()
    info["L2_bytes"], info["L3_bytes"] = l2, l3

    try:
        import simdnorm as sn
    except Exception as e:  # noqa: BLE001
        sys.exit(f"cannot import simdnorm ({type(e).__name__}: {e}); install it: pip install --no-build-isolation .")
    sn.set_num_threads(threads)
    info["simdnorm"] = getattr(sn, "__version__", "?")
    info["simdnorm_path"] = os.path.dirname(getattr(sn, "__file__", "") or "")
    info["isa_default"] = sn.current_isa()
    info["isas_available"] = list(sn.available_isas())
    info["simdnorm_threads"] = sn.get_num_threads()
    if args.isa == "all":
        isas = list(info["isas_available"])
    elif args.isa == "best":
        isas = [info["isa_default"]]
    else:
        if args.isa not in info["isas_available"]:
            sys.exit(f"--isa {args.isa}: not available here (available: {info['isas_available']})")
        isas = [args.isa]
    ref_isa = info["isa_default"] if info["isa_default"] in isas else isas[0]
    info["isas_measured"], info["isa_ratio_base"] = isas, ref_isa

    torch = ort = None
    if "torch" in args.peers:
        torch, why = load_torch(threads)
        info["torch"] = torch.__version__ if torch else f"unavailable ({why})"
        if torch:
            info["torch_threads"] = torch.get_num_threads()
    if "ort" in args.peers:
        ort, why = load_ort()
        if ort:
            import onnx

            info["onnxruntime"] = ort.__version__
            info["onnx"] = onnx.__version__
        else:
            info["onnxruntime"] = f"unavailable ({why})"
    ort_factory = OrtFactory(ort, threads) if ort else None

    # ---- floors and ceilings ----
    log(args, f"[threads={threads}] measuring floors and copy ceilings ...")
    floors = {}
    tiny = np.ones(768, np.float32)
    noop = None
    for holder in (sn, getattr(sn, "_core", None)):
        for name in ("_noop", "noop", "_nop", "nop"):
            if holder is not None and callable(getattr(holder, name, None)):
                noop = (f"simdnorm.{'_core.' if holder is not sn else ''}{name}()", getattr(holder, name))
                break
        if noop:
            break
    if noop:
        label, fn = noop
        try:
            fn()
        except TypeError:  # e.g. _noop(x, out=None): the cost of passing an array, like a real call
            label, fn = label.replace("()", "(x)"), (lambda f=fn: f(tiny))
        floors[label + " (no-op C call)"] = measure(fn, args.repeat, args.sample_ms)["median_ns"]
    cur = sn.current_isa
    kind = "C call" if type(cur).__name__ == "builtin_function_or_method" else "Python-level call"
    floors[f"simdnorm.current_isa() ({kind})"] = measure(cur, args.repeat, args.sample_ms)["median_ns"]
    floors["len(x) (Python call floor)"] = measure(lambda: len(tiny), args.repeat, args.sample_ms)["median_ns"]
    floors["np.empty(768) (output allocation)"] = measure(
        lambda: np.empty(768, np.float32), args.repeat, args.sample_ms
    )["median_ns"]
    floors["np.empty(16384*1024) (large allocation)"] = measure(
        lambda: np.empty(16384 * 1024, np.float32), args.repeat, args.sample_ms
    )["median_ns"]
    ceilings = copy_ceilings(np, threads, l2, l3, args.repeat, args.sample_ms)

    # ---- cases ----
    if args.shape_list:
        cases = shapes_grid(args.ops, args.shape_list)
    elif args.full:
        cases = full_grid(args.ops)
    else:
        cases = quick_grid(args.ops)

    rows = []
    for dtype_name in args.dtypes:
        dtype = np.dtype(dtype_name)
        for c in cases:
            name = case_name(c) + ("" if dtype_name == "float32" else " f64")
            try:
                data = build_case(np, c, dtype, sn, torch, ort_factory)
            except MemoryError:
                log(args, f"  {name}: skipped (out of memory)")
                continue
            row = {
                "case": name,
                "op": c["op"],
                "shape": list(c["shape"]),
                "layout": c["layout"],
                "out": c["out"],
                "fold": c["fold"],
                "dtype": dtype_name,
                "threads": threads,
                "bytes": data["bytes"],
                "working_set": 2 * data["x"].nbytes,
                "us": {},
                "err": {},
                "spread": {},
                "skipped": dict(data["skips"]),
            }
            impls = []
            if "simdnorm" in data["runners"]:
                impls += [(f"simdnorm[{isa}]", "simdnorm", isa) for isa in isas]
            impls += [(p, p, None) for p in ("numpy", "torch", "ort") if p in data["runners"] and p in args.peers]
            entries = []
            for label, key, isa in impls:
                fn = data["runners"][key]
                ctx = (lambda isa=isa: sn.use_isa(isa)) if isa is not None else None
                try:
                    if ctx is not None:
                        with ctx():
                            row["err"][label] = check(np, key, data, fn)
                    else:
                        row["err"][label] = check(np, key, data, fn)
                except Exception as e:  # noqa: BLE001
                    row["skipped"][label] = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
                    log(args, f"  {name} [{label}]: FAILED {row['skipped'][label]}")
                    continue
                entries.append((label, fn, ctx))
            # The data-movement floor of this very case, timed alongside: one read of x and one write
            # of a same-size array (into a preallocated one for out= rows, a fresh one otherwise).
            x_in = data["x"]
            if c["out"]:
                copy_buf = np.empty_like(x_in)
                entries.append(("copy", lambda: np.copyto(copy_buf, x_in), None))
            else:
                entries.append(("copy", x_in.copy, None))
            # Pause between samples with several threads: lets spinning pools (OpenMP, ORT) go idle.
            # PyTorch's OpenMP workers keep spinning 3-10 ms after its last call (libgomp): timed in
            # that window, another library's threads share the cores with them (simdnorm BatchNorm
            # train NHWC at 2 threads 44 -> 136 us; bench/README.md tuning log 16). So 15 ms of
            # busy-waiting follow each PyTorch sample (busy, not asleep: idle cores clock down).
            timed = measure_interleaved(
                entries,
                args.repeat,
                args.sample_ms,
                pause_s=0.001 if threads > 1 else 0.0,
                busy_after={"torch": 0.015} if threads > 1 else None,
            )
            # The thread speed-up compares simdnorm with itself, so it gets a loop of its own:
            # simdnorm at `threads` and at 1 thread alternating, nothing else between the samples,
            # each sample after 2 ms of untimed calls. Its helper threads fall asleep during the
            # 1-thread samples, and this VM takes 3 us to 1.5 ms to run a woken thread on an idle
            # core (steady state is what a service calling in a loop sees). Inside the peers'
            # loop that core also sits idle through their samples and PyTorch's leave it slow
            # even 50 ms after their last call (bench/README.md tuning log 17).
            base_isa = info["isa_ratio_base"]
            if threads > 1 and f"simdnorm[{base_isa}]" in [e[0] for e in entries]:
                fn = data["runners"]["simdnorm"]
                own = measure_interleaved(
                    [(SCALED, fn, lambda: sn.use_isa(base_isa)), (ONE_THREAD, fn, lambda: one_thread(sn, base_isa))],
                    args.repeat,
                    args.sample_ms,
                    warm_s=0.002,
                )
                if not any(isinstance(r, Exception) for r in own.values()):
                    row["scaling"] = {label: r["median_ns"] / 1e3 for label, r in own.items()}
            for label, r in timed.items():
                if isinstance(r, Exception):
                    row["skipped"][label] = f"{type(r).__name__}: {str(r).splitlines()[0][:160] if str(r) else ''}"
                    continue
                row["us"][label] = r["median_ns"] / 1e3
                row["spread"][label] = {
                    "min_us": r["min_ns"] / 1e3,
                    "p25_us": r["p25_ns"] / 1e3,
                    "p75_us": r["p75_ns"] / 1e3,
                    "samples": r["samples"],
                    "calls_per_sample": r["inner"],
                }
            log(
                args,
                f"  {name}: " + ", ".join(f"{k} {v:.2f}us" for k, v in row["us"].items()),
            )
            rows.append(row)
            del data
    busy, own, wall = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    if busy is not None and load_start[0] is not None:
        # CPU time burnt by everything else on the machine during this run, in cores: a shared,
        # busy machine makes absolute numbers (and multi-thread ones most) unreliable.
        other = (busy - load_start[0]) - (own - load_start[1])
        info["background_load_cores"] = round(max(0.0, other / max(wall - load_start[2], 1e-9)), 2)
    info["run_seconds"] = round(wall - load_start[2], 1)
    return {"info": info, "floors_ns": floors, "ceilings": ceilings, "rows": rows}


# --------------------------------------------------------------------------------------------------
# Report


def ceiling_for(row, result):
    """The copy ceiling whose footprint matches this case's working set."""
    info, ceil = result["info"], result["ceilings"]
    ws = row["working_set"]
    if ws <= 0.75 * info["L2_bytes"] and "L2" in ceil:
        return "L2", ceil["L2"]["GBps"]
    if ws <= 0.75 * info["L3_bytes"] and "L3" in ceil:
        return "L3", ceil["L3"]["GBps"]
    return "DRAM", ceil["DRAM"]["GBps"]


def fmt_us(v):
    if v is None:
        return "—"
    if v < 10:
        return f"{v:.2f}"
    if v < 1000:
        return f"{v:.1f}"
    return f"{v:,.0f}"


def fmt_err(e, dtype):
    if e is None:
        return "—"
    bad = e > (1e-3 if dtype == "float32" else 1e-9)
    s = "inf" if e == float("inf") else f"{e:.1e}"
    return f"**{s} WRONG**" if bad else s


def render(results, args):
    lines = []
    first = results[0]["info"]
    lines.append("## simdnorm benchmark")
    lines.append("")
    lines.append(f"- CPU: {first['cpu']} ({first['cpus_usable']} usable CPUs), {first['platform']}")
    lines.append(
        f"- caches: L2 {first['L2_bytes'] >> 10} KiB/core, L3 {first['L3_bytes'] >> 20} MiB; Python {first['python']}"
    )
    lines.append(
        f"- simdnorm {first['simdnorm']} ({first['simdnorm_path']}); current_isa() = {first['isa_default']}; "
        f"available_isas() = {first['isas_available']}"
    )
    lines.append(
        f"- numpy {first['numpy']}; torch {first.get('torch', 'not requested')}; "
        f"onnxruntime {first.get('onnxruntime', 'not requested')}"
        + (f" (onnx {first['onnx']})" if "onnx" in first else "")
    )
    lines.append(
        f"- dtype {','.join(args.dtypes) if hasattr(args, 'dtypes') else '?'}; medians of "
        f"{args.repeat} samples, each a loop of >= {args.sample_ms} ms; µs per call"
    )
    for result in results:
        info = result["info"]
        t = info["threads"]
        lines.append("")
        lines.append(
            f"### threads = {t} (simdnorm.get_num_threads() = {info['simdnorm_threads']}"
            + (f", torch {info['torch_threads']}" if "torch_threads" in info else "")
            + (", ORT intra_op_num_threads " + str(t) if "onnx" in info else "")
            + ")"
        )
        lines.append("")
        floors = "; ".join(f"{k} {v:.0f} ns" for k, v in result["floors_ns"].items())
        lines.append(f"Floors: {floors}")
        load = info.get("background_load_cores")
        if load is not None:
            warn = " — WARNING: the machine was busy, numbers are noisy" if load > 0.25 else ""
            lines.append(f"Background CPU load from other processes during this run: {load:.2f} cores{warn}")
        ceil = "; ".join(
            f"{lvl} ({v['bytes_per_copy'] / 2**20:.2f} MiB copied) {v['GBps']:.1f} GB/s"
            for lvl, v in result["ceilings"].items()
        )
        lines.append(f"np.copyto ceilings (bytes read + written / s, {t} thread(s)): {ceil}")
        lines.append("")
        isas = info["isas_measured"]
        base = f"simdnorm[{info['isa_ratio_base']}]"
        peers = [p for p in PEERS if p in args.peers]
        one = any("scaling" in row for row in result["rows"])
        header = ["case"] + [f"sn {i} µs" for i in isas]
        header += [f"own loop: sn {t} / 1 thread µs", "speed-up"] if one else []
        header += [f"{p} µs" for p in peers]
        header += [f"{p}/sn" for p in peers]
        header += ["copy µs", "sn/copy", "sn GB/s", "% copy", "max abs err (sn ISAs / peers)"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|")
        for row in result["rows"]:
            us = row["us"]
            cells = [row["case"]]
            cells += [fmt_us(us.get(f"simdnorm[{i}]")) for i in isas]
            b = us.get(base)
            if one:
                own = row.get("scaling", {})
                many, single = own.get(SCALED), own.get(ONE_THREAD)
                cells += [f"{fmt_us(many)} / {fmt_us(single)}", f"{single / many:.2f}" if (single and many) else "—"]
            cells += [fmt_us(us.get(p)) if p in us else ("n/a" if p in row["skipped"] else "—") for p in peers]
            for p in peers:
                cells.append(f"{us[p] / b:.2f}" if (b and p in us) else "—")
            copy_us = us.get("copy")
            cells.append(fmt_us(copy_us))
            cells.append(f"{b / copy_us:.2f}" if (b and copy_us) else "—")
            if b:
                gbps = row["bytes"] / (b * 1e3)
                lvl, cgb = ceiling_for(row, result)
                cells += [f"{gbps:.1f}", f"{100 * gbps / cgb:.0f}% {lvl}"]
            else:
                cells += ["—", "—"]
            errs_sn = "/".join(fmt_err(row["err"].get(f"simdnorm[{i}]"), row["dtype"]) for i in isas)
            errs_peer = "/".join(fmt_err(row["err"].get(p), row["dtype"]) for p in peers if p in row["err"])
            cells.append(errs_sn + (" · " + errs_peer if errs_peer else ""))
            lines.append("| " + " | ".join(cells) + " |")
        skipped = {}
        for row in result["rows"]:
            for impl, why in row["skipped"].items():
                skipped.setdefault((impl, why), []).append(row["case"])
        if skipped:
            lines.append("")
            lines.append("Not measured:")
            for (impl, why), names in skipped.items():
                more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
                lines.append(f"- {impl}: {why} — {', '.join(names[:3])}{more}")
    lines.append("")
    lines.append(
        f"Ratios are peer time / {results[0]['info']['isa_ratio_base']} time (> 1: simdnorm faster). "
        "GB/s counts x read once + y written once (+ parameters); % copy compares it with the np.copyto "
        "ceiling for the level the working set (x + y) fits in. copy µs = one np.copyto of x into a "
        "preallocated array (out= rows) or x.copy() (rows that allocate their output), timed in the same "
        "interleaved loop: the 1-read-1-write floor of that case on one thread; sn/copy = simdnorm time over it. "
        "n/a = peer cannot run this case "
        "(see 'Not measured'); — = not applicable (out= / fold rows time simdnorm alone)."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# --compare and --plot


def _load(path):
    with open(path) as f:
        data = json.load(f)
    return data.get("results", [data])


def compare(old_path, new_path, threshold, fail):
    old, new = _load(old_path), _load(new_path)

    def index(results):
        out = {}
        for res in results:
            for row in res["rows"]:
                for impl, us in row["us"].items():
                    out[(row["case"], row["threads"], impl)] = us
        return out

    a, b = index(old), index(new)
    common = sorted(set(a) & set(b))
    slower, faster = [], []
    for key in common:
        change = 100.0 * (b[key] / a[key] - 1.0)
        if change > threshold:
            slower.append((change, key))
        elif change < -threshold:
            faster.append((change, key))
    print(f"compare {old_path} -> {new_path}: {len(common)} common measurements, threshold {threshold:g}%")
    for title, items in (("Slower", sorted(slower, reverse=True)), ("Faster", sorted(faster))):
        print(f"\n### {title} by more than {threshold:g}%: {len(items)}\n")
        if items:
            print("| case | threads | impl | old µs | new µs | change |")
            print("|---|---:|---|---:|---:|---:|")
            for change, key in items:
                print(f"| {key[0]} | {key[1]} | {key[2]} | {fmt_us(a[key])} | {fmt_us(b[key])} | {change:+.1f}% |")
    only_old, only_new = len(set(a) - set(b)), len(set(b) - set(a))
    if only_old or only_new:
        print(f"\n({only_old} measurements only in OLD, {only_new} only in NEW)")
    return 1 if (fail and slower) else 0


def plot(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:  # noqa: BLE001
        print(f"--plot: skipped, matplotlib is not importable ({type(e).__name__}: {e})", file=sys.stderr)
        return
    n = len(results)
    height = max(4.0, 0.32 * max(len(r["rows"]) for r in results) + 1.5)
    fig, axes = plt.subplots(1, n, figsize=(9 * n, height), squeeze=False)
    for ax, result in zip(axes[0], results):
        rows = result["rows"]
        impls = []
        for row in rows:
            for k in row["us"]:
                if k not in impls:
                    impls.append(k)
        width = 0.8 / max(1, len(impls))
        for j, impl in enumerate(impls):
            ys = [i + j * width for i in range(len(rows))]
            vals = [row["us"].get(impl, 0) or 0 for row in rows]
            ax.barh(ys, vals, height=width, label=impl)
        ax.set_yticks([i + 0.4 - width / 2 for i in range(len(rows))])
        ax.set_yticklabels([row["case"] for row in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("µs per call (median, log scale; shorter is faster)")
        ax.set_title(f"threads = {result['info']['threads']}  ({result['info']['cpu']})", fontsize=9)
        ax.grid(axis="x", which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}", file=sys.stderr)


# --------------------------------------------------------------------------------------------------


def child_argv(args, threads, out_path):
    argv = [sys.executable, os.path.abspath(__file__), "--threads", str(threads), "--_child-out", out_path]
    argv += ["--ops", ",".join(args.ops), "--repeat", str(args.repeat), "--sample-ms", str(args.sample_ms)]
    argv += ["--isa", args.isa, "--dtype", ",".join(args.dtypes)]
    argv += ["--peers", ",".join(args.peers) if args.peers else "none"]
    if args.shapes:
        argv += ["--shapes", args.shapes]
    if args.full:
        argv.append("--full")
    if args.quiet:
        argv.append("--quiet")
    return argv


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.compare:
        return compare(args.compare[0], args.compare[1], args.threshold, args.fail_on_regression)

    t_start = time.perf_counter()
    if len(args.thread_list) == 1:
        pin_threads(args.thread_list[0])  # before numpy / torch / onnxruntime are imported
        result = run_suite(args, args.thread_list[0])
        if args.child_out:
            with open(args.child_out, "w") as f:
                json.dump(result, f)
            return 0
        results = [result]
    else:
        # One process per thread count: the environment is read by OpenMP / BLAS at import time.
        results = []
        with tempfile.TemporaryDirectory() as tmp:
            for t in args.thread_list:
                path = os.path.join(tmp, f"threads{t}.json")
                env = dict(os.environ)
                for var in THREAD_ENV_VARS:
                    env[var] = str(t)
                proc = subprocess.run(child_argv(args, t, path), env=env, check=False)
                if proc.returncode != 0:
                    print(f"run with threads={t} failed (exit {proc.returncode})", file=sys.stderr)
                    return proc.returncode or 1
                with open(path) as f:
                    results.append(json.load(f))

    print(render(results, args))
    print()
    print(targets.render(results))
    print(f"\n(total bench time {time.perf_counter() - t_start:.0f} s)")
    if args.json:
        payload = {
            "schema": 1,
            "argv": sys.argv[1:] if argv is None else list(argv),
            "command": "python bench/bench_norms.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "results": results,
        }
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
        print(f"results written to {args.json}", file=sys.stderr)
    if args.plot:
        plot(results, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
