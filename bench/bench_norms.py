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
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import targets  # bench/ is sys.path[0] when run as a script; none of these imports numpy
from _accuracy import offset_errors
from _cases import (
    ONE_THREAD,
    OPS,
    PEERS,
    SCALED,
    build_case,
    case_name,
    check,
    full_grid,
    quick_grid,
    shapes_grid,
)
from _machine import busy_cpu_seconds, cache_sizes, cpu_model, own_cpu_seconds
from _peers import THREAD_ENV_VARS, OrtFactory, load_ort, load_torch, pin_threads
from _report import compare, load_results, plot, render
from _timing import copy_ceilings, measure, measure_interleaved, one_thread, placed_empty

# Nothing here may import numpy / torch at module level: thread counts are pinned first (main()).


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
    p.add_argument("--no-accuracy", dest="accuracy", action="store_false",
                   help="skip the float32 accuracy table on offset data (c + N(0, 1), c up to 1e6)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--_child-out", dest="child_out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for path in args.compare or ():
        try:
            load_results(path)
        except (OSError, ValueError) as exc:
            p.error(f"--compare: cannot read {path}: {exc}")
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


def log(args, msg):
    if not args.quiet:
        print(msg, file=sys.stderr, flush=True)


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
            # of a same-size array (into a preallocated one for out= rows, placed away from the
            # source's page offset as the ceilings are; a fresh one otherwise).
            x_in = data["x"]
            if c["out"]:
                copy_buf = placed_empty(np, x_in)
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
    result = {"info": info, "floors_ns": floors, "ceilings": ceilings, "rows": rows}
    if "float32" in args.dtypes and args.accuracy:
        log(args, f"[threads={threads}] accuracy on offset data ...")
        result["accuracy"] = offset_errors(np, sn, isas)
    return result


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
    if not args.accuracy:
        argv.append("--no-accuracy")
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
