"""bench_norms.py's timing: median-of-samples loops (alone and interleaved) and the np.copyto ceilings.

Nothing here imports numpy at module level (bench_norms.py pins thread counts first): copy_ceilings
takes the numpy module as an argument.
"""

import contextlib
import random
import time

# --------------------------------------------------------------------------------------------------
# Timing


def calls_per_sample(fn, sample_ms):
    """Warms fn up (at least 3 calls and ~20 ms) and returns the calls that fill one sample_ms sample."""
    clock = time.perf_counter_ns
    calls, start = 0, clock()
    while True:
        fn()
        calls += 1
        elapsed = clock() - start
        if calls >= 3 and elapsed > 20e6:
            break
    per_call = elapsed / calls
    return max(1, int(sample_ms * 1e6 / max(per_call, 1.0)))


def summarize(samples, inner):
    """Median, min and quartiles (ns per call) of a list of samples taken `inner` calls each."""
    samples = sorted(samples)
    n = len(samples)
    return {
        "median_ns": samples[n // 2] if n % 2 else 0.5 * (samples[n // 2 - 1] + samples[n // 2]),
        "min_ns": samples[0],
        "p25_ns": samples[n // 4],
        "p75_ns": samples[(3 * n) // 4],
        "samples": n,
        "inner": inner,
    }


def measure(fn, repeat, sample_ms, max_total_s=8.0):
    """Median-of-samples time of fn() in ns per call, plus spread. fn is warmed up first."""
    import gc

    clock = time.perf_counter_ns
    inner = calls_per_sample(fn, sample_ms)
    samples = []
    budget_end = clock() + max_total_s * 1e9
    shuffler = random.Random(20261208)
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
    return summarize(samples, inner)


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
    import gc

    clock = time.perf_counter_ns
    plans, results = [], {}
    for label, fn, ctx in entries:
        ctx = ctx or contextlib.nullcontext
        try:
            with ctx():
                plans.append((label, fn, ctx, calls_per_sample(fn, sample_ms)))
            results[label] = []
        except Exception as e:  # noqa: BLE001
            results[label] = e
    budget_end = clock() + max_total_s * 1e9
    shuffler = random.Random(20261208)
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeat):
            # Each round takes its own order: whichever runs right after another one inherits its
            # cache and write-back state (after the copy of a 4 MiB row, the next LayerNorm 1x1M
            # sample ran 5-10 % slower). Rounds that only rotated one order kept every predecessor
            # but one: the first simdnorm variant followed the 64 MiB copy in most rounds, and the
            # allocating LayerNorm 16384x1024 read AVX-512 1.1-1.35x AVX2 where alternating the two
            # by hand measured them level (bench/README.md, tuning log 34). Seeded: reproducible.
            order = list(plans)
            shuffler.shuffle(order)
            for label, fn, ctx, inner in order:
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
        out[label] = summarize(results[label], inner)
    for label, value in results.items():
        if isinstance(value, Exception):
            out[label] = value
    return out


# Where a copy's destination sits relative to its source, in bytes modulo a 4 KiB page. glibc's
# memcpy (rep movsb on CPUs with fast short rep movs) slows down ~15x when dst - src is a few bytes
# past a multiple of 4 KiB: 64 KiB float32 on a 2-core AMD EPYC (Zen 3) VM, dst - src = 16 mod 4096
# 38 us, at 0 / 64 / 2048 2.6-3.0 us. Two NumPy arrays taken one after the other from the heap land
# exactly there, so a ceiling or floor timed on them would measure the allocator, not the machine.
DST_PAGE_OFFSET = 2048


def placed_empty(np, like, offset=DST_PAGE_OFFSET, page=4096):
    """An empty array shaped like `like` whose data starts `offset` bytes past like's address
    modulo a page (its own buffer, kept alive through .base)."""
    raw = np.empty(like.nbytes + 2 * page, np.uint8)
    start = (like.ctypes.data + offset - raw.ctypes.data) % page
    return raw[start : start + like.nbytes].view(like.dtype).reshape(like.shape)


def copy_ceilings(np, threads, l2, l3, repeat, sample_ms):
    """np.copyto bandwidth (bytes read + written per second) at L2, L3 and DRAM sizes.

    Each destination sits DST_PAGE_OFFSET bytes past its source modulo a page (placed_empty).
    With several threads each thread loops over its own buffers (NumPy releases the GIL for plain
    copies); the result is total bytes over wall time, so it is an aggregate ceiling.
    """
    import threading

    def buffers(nbytes):
        src = np.ones(nbytes // 4, np.float32)
        return src, placed_empty(np, src)

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
        bufs = [buffers(per_thread) for _ in range(threads)]
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
