"""The output cache: large allocating calls reuse blocks of dead outputs (cpp/bindings/output_buffers.cpp).

Cached results must be indistinguishable from NumPy arrays in every way that matters (values,
layout, writeability, views, pickling), and a block must never back two live arrays.
"""

import json
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import pytest
import simdnorm

MIN_BYTES = 1 << 20  # kCachedOutputMinBytes
DEFAULT_LIMIT = 256 << 20
DTYPES = [np.float32, np.float64]


@pytest.fixture
def empty_cache():
    """Starts the test with no unused blocks held and restores the limit afterwards."""
    before = simdnorm.get_output_cache_limit()
    simdnorm.set_output_cache_limit(0)
    simdnorm.set_output_cache_limit(DEFAULT_LIMIT)
    assert simdnorm._core._output_cache_stats() == (0, 0)
    yield
    simdnorm.set_output_cache_limit(before)
    assert simdnorm.get_output_cache_limit() == before


def owner(a):
    """The object that owns a's memory (NumPy's base chain ends at it)."""
    while isinstance(a, np.ndarray) and a.base is not None:
        a = a.base
    return a


def is_cached(a):
    return type(owner(a)).__name__ == "PyCapsule"


def big(rng, dtype, shape=(512, 768)):
    """Random data whose output is >= 1 MiB (1.5 MiB in float32)."""
    x = rng.standard_normal(shape).astype(dtype)
    assert x.nbytes >= MIN_BYTES
    return x


def _stats_for(x):
    rs = simdnorm.RunningStats(x.shape[-1])
    rs.update(x)
    return rs


# Every op that allocates its output: name -> (x -> allocating result, (x, out) -> result into out).
def _ops():
    def bn_params(c, dtype):
        r = np.random.default_rng(c)
        return (r.standard_normal(c).astype(dtype), r.uniform(0.5, 2, c).astype(dtype),
                r.uniform(0.5, 2, c).astype(dtype), r.uniform(-1, 1, c).astype(dtype))

    def batch_norm(x, out=None):
        rm, rv, w, b = bn_params(x.shape[1], x.dtype)
        return simdnorm.batch_norm(x, rm, rv, w, b, out=out)

    def batch_norm_train(x, out=None):
        rm, rv, w, b = bn_params(x.shape[1], x.dtype)
        return simdnorm.batch_norm(x, rm, rv, w, b, training=True, out=out)

    def scale_shift(x, out=None):
        _, _, s, o = bn_params(x.shape[1], x.dtype)
        return simdnorm.scale_shift(x, s, o, out=out)

    def module(cls, **kw):
        def call(x, out=None):
            return cls(x.shape[-1], dtype=x.dtype, **kw)(x, out=out)
        return call

    def bn_module(x, out=None):
        m = simdnorm.BatchNorm(x.shape[1], dtype=x.dtype).eval()
        return m(x, out=out)

    def running_normalize(x, out=None):
        return _stats_for(x).normalize(x, out=out)

    def running_update_normalize(x, out=None):
        return simdnorm.RunningStats(x.shape[-1]).update_normalize(x, out=out)

    return {
        "layer_norm": lambda x, out=None: simdnorm.layer_norm(x, out=out),
        "rms_norm": lambda x, out=None: simdnorm.rms_norm(x, out=out),
        "batch_norm": batch_norm,
        "batch_norm_train": batch_norm_train,
        "scale_shift": scale_shift,
        "LayerNorm": module(simdnorm.LayerNorm),
        "RMSNorm": module(simdnorm.RMSNorm),
        "BatchNorm": bn_module,
        "RunningStats.normalize": running_normalize,
        "RunningStats.update_normalize": running_update_normalize,
    }


OPS = _ops()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_returns_a_cached_array_equal_to_out(empty_cache, rng, name, dtype):
    op = OPS[name]
    x = big(rng, dtype)
    got = op(x)
    expected = op(x, np.empty_like(x))
    assert is_cached(got), name
    assert got.dtype == x.dtype and got.shape == x.shape and got.strides == x.strides
    assert got.flags.c_contiguous and got.flags.writeable and got.flags.aligned
    assert got.ctypes.data % 64 == 0
    np.testing.assert_array_equal(got, expected, strict=True)
    assert not np.shares_memory(got, x)
    got[0, 0] = 7  # writeable for real
    assert got[0, 0] == 7


@pytest.mark.parametrize("name", sorted(OPS))
def test_small_outputs_stay_numpy_arrays(empty_cache, rng, name):
    x = rng.standard_normal((4, 768)).astype(np.float32)
    got = OPS[name](x)
    assert got.base is None and got.flags.owndata
    assert simdnorm._core._output_cache_stats() == (0, 0)


LINE_ALIGNED_MIN_BYTES = 128 << 10  # kLineAlignedOutputMinBytes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(OPS))
def test_medium_outputs_start_on_a_cache_line(empty_cache, rng, name, dtype):
    """Between 128 KiB and the cache's 1 MiB, outputs are line-aligned views of a NumPy buffer."""
    op = OPS[name]
    x = rng.standard_normal((64, 768)).astype(dtype)  # 192 or 384 KiB
    got = op(x)
    assert LINE_ALIGNED_MIN_BYTES <= got.nbytes < MIN_BYTES
    assert not is_cached(got) and simdnorm._core._output_cache_stats() == (0, 0)
    assert got.ctypes.data % 64 == 0
    assert got.flags.c_contiguous and got.flags.writeable and got.flags.aligned
    assert got.dtype == x.dtype and got.shape == x.shape and got.strides == x.strides
    assert isinstance(got.base, np.ndarray) and got.base.dtype == np.uint8 and got.base.base is None
    np.testing.assert_array_equal(got, op(x, np.empty_like(x)), strict=True)
    view = got[1:3]
    del got
    np.testing.assert_array_equal(view, op(x)[1:3])  # the view keeps the buffer alive
    view[0, 0] = 7
    assert view[0, 0] == 7
    result = op(x)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(result)), result, strict=True)


def test_line_aligned_threshold(empty_cache, rng):
    just_below = rng.standard_normal(LINE_ALIGNED_MIN_BYTES // 4 - 1).astype(np.float32)
    at = rng.standard_normal(LINE_ALIGNED_MIN_BYTES // 4).astype(np.float32)
    assert simdnorm.layer_norm(just_below).flags.owndata
    got = simdnorm.layer_norm(at)
    assert not got.flags.owndata and got.ctypes.data % 64 == 0 and not is_cached(got)


def test_threshold_is_one_mebibyte(empty_cache, rng):
    just_below = rng.standard_normal(MIN_BYTES // 4 - 1).astype(np.float32)
    at = rng.standard_normal(MIN_BYTES // 4).astype(np.float32)
    assert not is_cached(simdnorm.layer_norm(just_below))
    assert is_cached(simdnorm.layer_norm(at))


def _layouts():
    """name -> x: C, F and non-contiguous views whose outputs are >= 1 MiB."""
    r = np.random.default_rng(5)
    base3 = r.standard_normal((16, 64, 384)).astype(np.float32)  # 1.5 MiB
    wide = r.standard_normal((512, 1536)).astype(np.float32)
    layouts = {
        "C": base3,
        "F": np.asfortranarray(base3),
        "F 2-D": np.asfortranarray(wide),
        "column slice": wide[:, :768],
        "every other column": wide[:, ::2],
        "reversed rows": wide[::-1],
        "reversed columns": wide[:, ::-1],
        "1-D strided": wide.reshape(-1)[::2],
        # size-1 axis with a stride no dense layout has: NumPy's order='K' rule must still match
        "size-1 axis": np.lib.stride_tricks.as_strided(wide, (512, 1, 768), (6144, 12345 * 4, 4)),
    }
    for perm in [(0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]:
        layouts[f"transpose{perm}"] = base3.transpose(perm)
        layouts[f"transpose{perm} flipped"] = base3.transpose(perm)[::-1, :, ::-1]
    return layouts


LAYOUTS = _layouts()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_layout_matches_empty_like(empty_cache, layout):
    x = LAYOUTS[layout]
    expected_strides = np.empty_like(x).strides
    for op in (simdnorm.layer_norm, simdnorm.rms_norm):
        got = op(x)
        assert is_cached(got), layout
        assert got.shape == x.shape and got.dtype == x.dtype
        assert got.strides == expected_strides, layout
        assert got.flags.c_contiguous == np.empty_like(x).flags.c_contiguous
        assert got.flags.f_contiguous == np.empty_like(x).flags.f_contiguous
        assert got.flags.writeable
        np.testing.assert_array_equal(got, op(x, out=np.empty_like(x)), strict=True)


def test_layer_norm_along_leading_axes_of_f_array(empty_cache, rng):
    x = np.asfortranarray(big(rng, np.float64, (256, 1024)))
    got = simdnorm.layer_norm(x, axis=0)
    assert is_cached(got) and got.flags.f_contiguous
    np.testing.assert_array_equal(got, simdnorm.layer_norm(x, axis=0, out=np.empty_like(x)), strict=True)


def test_out_with_other_strides_uses_a_cached_temporary_and_returns_out(empty_cache, rng):
    x = big(rng, np.float32)
    out = np.empty(x.shape, x.dtype, order="F")
    got = simdnorm.layer_norm(x, out=out)
    assert got is out
    np.testing.assert_array_equal(out, simdnorm.layer_norm(x), strict=True)


def test_return_stats_large_statistics(empty_cache, rng):
    x = rng.standard_normal((300_000, 4)).astype(np.float32)  # mean / rstd: 1.2 MB each
    y, mean, rstd = simdnorm.layer_norm(x, return_stats=True)
    assert is_cached(y) and is_cached(mean) and is_cached(rstd)
    assert len({y.ctypes.data, mean.ctypes.data, rstd.ctypes.data}) == 3
    y2, mean2, rstd2 = simdnorm.layer_norm(x, out=np.empty_like(x), return_stats=True)
    np.testing.assert_array_equal(y, y2, strict=True)
    np.testing.assert_array_equal(mean, mean2, strict=True)
    np.testing.assert_array_equal(rstd, rstd2, strict=True)


def test_live_results_never_share_a_block(empty_cache, rng):
    xs = [big(rng, np.float32) for _ in range(3)]
    expected = [simdnorm.layer_norm(x, out=np.empty_like(x)) for x in xs]
    results = [simdnorm.layer_norm(x) for x in xs]
    assert all(map(is_cached, results))
    assert len({r.ctypes.data for r in results}) == 3
    for _ in range(3):  # more calls while all three are alive
        for x in xs:
            simdnorm.layer_norm(x)
    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want, strict=True)


def test_a_dead_result_block_is_reused(empty_cache, rng):
    x = big(rng, np.float32)
    first = simdnorm.layer_norm(x)
    address = first.ctypes.data
    del first
    assert simdnorm._core._output_cache_stats() == (1, 2 << 20)  # 1.5 MiB rounded up to 2 MiB
    second = simdnorm.rms_norm(x)
    assert second.ctypes.data == address
    assert simdnorm._core._output_cache_stats() == (0, 0)
    np.testing.assert_array_equal(second, simdnorm.rms_norm(x, out=np.empty_like(x)), strict=True)


def test_a_block_more_than_twice_the_size_is_not_used(empty_cache, rng):
    large = simdnorm.layer_norm(big(rng, np.float32, (2048, 1024)))  # 8 MiB
    del large
    small = simdnorm.layer_norm(big(rng, np.float32, (512, 1024)))  # 2 MiB
    assert small.nbytes == 2 << 20
    blocks, held = simdnorm._core._output_cache_stats()
    assert blocks == 1 and 8 << 20 <= held <= 10 << 20  # the 8 MiB (+ page-offset headroom) block stayed unused


def test_views_keep_the_block_alive(empty_cache, rng):
    x, other = big(rng, np.float32), big(rng, np.float32)
    y = simdnorm.layer_norm(x)
    view = y[100:110, ::3]
    kept = view.copy()
    del y
    assert simdnorm._core._output_cache_stats() == (0, 0)  # still in use through the view
    zs = [simdnorm.layer_norm(other) for _ in range(3)]
    assert not any(np.shares_memory(z, view) for z in zs)
    np.testing.assert_array_equal(view, kept, strict=True)
    del zs, view
    assert simdnorm._core._output_cache_stats()[0] == 4


def test_pickle_roundtrip(empty_cache, rng):
    y = simdnorm.layer_norm(big(rng, np.float64))
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        back = pickle.loads(pickle.dumps(y, protocol=protocol))
        assert not np.shares_memory(back, y)
        np.testing.assert_array_equal(back, y, strict=True)


def test_numpy_operations_on_cached_results(empty_cache, rng):
    y = simdnorm.rms_norm(big(rng, np.float32))
    expected = y.copy()
    y += 1
    np.testing.assert_array_equal(y, expected + 1)
    np.testing.assert_array_equal(np.resize(y, (10,)), (expected + 1).reshape(-1)[:10])
    with pytest.raises(ValueError):  # documented: the array does not own its memory
        y.resize((10,))


def test_limit_roundtrip_and_disable(empty_cache, rng):
    assert simdnorm.get_output_cache_limit() == DEFAULT_LIMIT
    assert simdnorm.set_output_cache_limit(64 << 20) == DEFAULT_LIMIT
    assert simdnorm.get_output_cache_limit() == 64 << 20
    assert simdnorm.set_output_cache_limit(np.int64(32 << 20)) == 64 << 20  # any int-like
    ys = [simdnorm.layer_norm(big(rng, np.float32)) for _ in range(3)]
    del ys
    assert simdnorm._core._output_cache_stats() == (3, 6 << 20)
    assert simdnorm.set_output_cache_limit(0) == 32 << 20  # disables and frees every unused block
    assert simdnorm._core._output_cache_stats() == (0, 0)
    y = simdnorm.layer_norm(big(rng, np.float32))
    assert y.base is None and y.flags.owndata  # plain NumPy allocation while disabled
    del y
    assert simdnorm._core._output_cache_stats() == (0, 0)


def test_results_alive_when_disabled_are_freed_not_kept(empty_cache, rng):
    y = simdnorm.layer_norm(big(rng, np.float32))
    simdnorm.set_output_cache_limit(0)
    del y
    assert simdnorm._core._output_cache_stats() == (0, 0)


def test_limit_bounds_unused_bytes_dropping_oldest(empty_cache, rng):
    simdnorm.set_output_cache_limit(4 << 20)  # room for two 2 MiB blocks
    ys = [simdnorm.layer_norm(big(rng, np.float32)) for _ in range(3)]
    addresses = [y.ctypes.data // 4096 for y in ys]  # the block's page: the offset in it follows x
    for i in range(3):
        ys[i] = None  # dies in order: the block of ys[0] is the oldest unused one
    assert simdnorm._core._output_cache_stats() == (2, 4 << 20)
    new = [simdnorm.layer_norm(big(rng, np.float32)) for _ in range(2)]
    assert {y.ctypes.data // 4096 for y in new} == set(addresses[1:])  # the two kept blocks, not ys[0]'s
    del new
    simdnorm.set_output_cache_limit(2 << 20)  # lowering frees now
    assert simdnorm._core._output_cache_stats() == (1, 2 << 20)


def test_block_larger_than_the_limit_is_freed(empty_cache, rng):
    simdnorm.set_output_cache_limit(1 << 20)
    y = simdnorm.layer_norm(big(rng, np.float32))
    assert is_cached(y)
    del y
    assert simdnorm._core._output_cache_stats() == (0, 0)


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (-(2**70), ValueError), (1.5, TypeError),
                                        ("1", TypeError), (None, TypeError), (True, TypeError),
                                        (2**70, OverflowError)])
def test_bad_limits_raise_and_change_nothing(empty_cache, bad, error):
    with pytest.raises(error, match="nbytes" if error is not OverflowError else None):
        simdnorm.set_output_cache_limit(bad)
    assert simdnorm.get_output_cache_limit() == DEFAULT_LIMIT


def test_threads_get_correct_results(empty_cache):
    rng = np.random.default_rng(7)
    xs = [big(rng, np.float32) for _ in range(4)]
    expected = [simdnorm.layer_norm(x, out=np.empty_like(x)) for x in xs]
    start = threading.Barrier(4)
    failures = []

    def work(k):
        start.wait()
        kept = []
        for i in range(20):
            y = simdnorm.layer_norm(xs[k])
            if i % 5 == 0:  # some results stay alive while others cycle through the cache
                kept.append(y)
            if not np.array_equal(y, expected[k]):
                failures.append((k, i))
        for y in kept:
            if not np.array_equal(y, expected[k]):
                failures.append((k, "kept"))
        if len({y.ctypes.data for y in kept}) != len(kept):
            failures.append((k, "shared block"))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    assert simdnorm._core._output_cache_stats()[1] <= DEFAULT_LIMIT


def _run(script, env_value=None, timeout=60):
    env = {k: v for k, v in os.environ.items() if k != "SIMDNORM_OUTPUT_CACHE_BYTES"}
    if env_value is not None:
        env["SIMDNORM_OUTPUT_CACHE_BYTES"] = env_value
    proc = subprocess.run([sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=os.path.dirname(os.path.abspath(__file__)))
    assert proc.returncode == 0, proc.stderr
    return proc


# Imports simdnorm with warnings recorded and reports the limit and whether a large output is cached.
ENV_PROBE = r"""
import json, warnings
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import simdnorm
import numpy as np
y = simdnorm.layer_norm(np.ones((512, 768), np.float32))
print(json.dumps({
    "limit": simdnorm.get_output_cache_limit(),
    "cached": type(y.base).__name__ == "PyCapsule",
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
}))
"""


def env_probe(value):
    return json.loads(_run(ENV_PROBE, value).stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("value, limit", [(None, DEFAULT_LIMIT), ("", DEFAULT_LIMIT), ("0", 0),
                                          ("1048576", 1 << 20), ("68719476736", 1 << 36)])
def test_env_var_sets_the_limit(value, limit):
    report = env_probe(value)
    assert report["limit"] == limit
    assert report["warnings"] == []
    assert report["cached"] == (limit > 0)  # the limit bounds unused blocks only


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", " 12", "12 ", "1e9", "0x10", "99999999999999999999999"])
def test_env_var_invalid_warns_and_keeps_the_default(value):
    report = env_probe(value)
    assert report["limit"] == DEFAULT_LIMIT
    assert report["cached"]
    messages = [msg for cat, msg in report["warnings"] if cat == "RuntimeWarning"]
    assert len(messages) == 1 and "SIMDNORM_OUTPUT_CACHE_BYTES" in messages[0] and repr(value) in messages[0]


FORK_SCRIPT = r"""
import os, sys, threading, warnings
warnings.simplefilter("ignore")  # fork() of a multi-threaded process warns on newer Pythons
import numpy as np
import simdnorm
x = np.random.default_rng(1).standard_normal((512, 768)).astype(np.float32)
expected = simdnorm.layer_norm(x, out=np.empty_like(x))
alive = simdnorm.layer_norm(x)          # a block in use across the fork
del_me = simdnorm.layer_norm(x); del del_me   # an unused block the child may reuse
stop, wrong = False, []
def churn():                            # another thread using the cache while the main thread forks
    while not stop:
        if not np.array_equal(simdnorm.layer_norm(x), expected):
            wrong.append(1)
t = threading.Thread(target=churn); t.start()
for _ in range(10):
    pid = os.fork()
    if pid == 0:
        ok = all(np.array_equal(simdnorm.layer_norm(x), expected) for _ in range(3))
        ok = ok and np.array_equal(alive, expected)
        simdnorm.set_output_cache_limit(0)  # frees what the child holds
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
stop = True; t.join()
assert not wrong and np.array_equal(alive, expected)
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_can_use_the_cache():
    assert _run(FORK_SCRIPT, timeout=120).stdout.strip().endswith("ok")


def test_interpreter_exit_with_cached_arrays_alive():
    script = r"""
import numpy as np, simdnorm
keep = simdnorm.layer_norm(np.ones((512, 768), np.float32))
cycle = [simdnorm.rms_norm(np.ones((512, 768), np.float32))]; cycle.append(cycle)
unused = simdnorm.layer_norm(np.ones((1024, 768), np.float32)); del unused
print("done")
"""
    proc = _run(script)
    assert proc.stdout.strip() == "done" and proc.stderr == ""


def test_show_config_reports_the_cache(capfd):
    simdnorm.show_config()
    out = capfd.readouterr().out
    assert "output cache" in out and str(simdnorm.get_output_cache_limit()) in out


@pytest.mark.parametrize("input_offset", [0, 16, 1024 + 8, 3072 + 64 + 48, 4032 + 4])
def test_streamed_outputs_keep_their_inputs_offset_within_a_line(empty_cache, input_offset):
    # >= 16 MiB: non-temporal stores aligned per row also align the loads of x (output_buffers.hpp).
    rows, cols = 4200, 1024  # 16.4 MiB of float32
    buf = np.empty(rows * cols + 2048, np.float32)
    start = ((-buf.ctypes.data) % 4096 + input_offset) // 4
    x = buf[start : start + rows * cols].reshape(rows, cols)
    x[...] = np.random.default_rng(input_offset).standard_normal((rows, cols), dtype=np.float32)
    assert x.ctypes.data % 4096 == input_offset
    y = simdnorm.layer_norm(x)
    assert is_cached(y)
    assert y.ctypes.data % 4096 == (input_offset + 2048) % 4096
    np.testing.assert_array_equal(y[::97], simdnorm.layer_norm(x[::97]), strict=True)
    # Short rows (here 64 channels, 256 bytes) start on a line: each would otherwise begin and end
    # with a partial line of ordinary stores.
    img = x.reshape(-1, 64)
    z = simdnorm.scale_shift(img, np.ones(64, np.float32), np.zeros(64, np.float32))
    assert is_cached(z) and z.ctypes.data % 4096 == ((input_offset + 2048) % 4096) // 64 * 64
    np.testing.assert_array_equal(z, img, strict=True)


@pytest.mark.parametrize("input_offset", [0, 16, 1024, 3072 + 64, 4032])
def test_outputs_start_half_a_page_after_their_input(empty_cache, rng, input_offset):
    # Equal page offsets make x and y share L1 sets and 4K-alias (output_buffers.hpp).
    x = big(rng, np.float32)
    buf = np.empty(x.size + 2048, np.float32)
    start = ((-buf.ctypes.data) % 4096 + input_offset) // 4
    shifted = buf[start:start + x.size].reshape(x.shape)
    shifted[...] = x
    assert shifted.ctypes.data % 4096 == input_offset
    y = simdnorm.layer_norm(shifted)
    assert y.ctypes.data % 4096 == ((input_offset + 2048) % 4096) // 64 * 64
    np.testing.assert_array_equal(y, simdnorm.layer_norm(x), strict=True)
