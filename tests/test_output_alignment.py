"""Rows whose input or output starts off a vector boundary, out of place and in place.

Every result must equal, bit for bit, the same rows computed in an aligned array: the statistics
and the per-element formula do not depend on where a row sits, whatever a kernel does about
alignment (peeled heads, overlapping unaligned stores, masked tails). In place, each value must
come from x as it was before the call.
"""

import numpy as np
import pytest

import simdnorm

# Lengths around the widest vector (16 float32 lanes) and its multiples, with and without a tail.
LENGTHS = [16, 17, 23, 31, 32, 33, 47, 64, 67, 100, 768, 771]
ROWS = [1, 2, 3, 5]
OFFSETS = range(0, 16)  # elements past a 64-byte boundary


def _placed(values, offset):
    """A copy of `values` whose data starts `offset` elements past a 64-byte boundary."""
    count = values.size
    raw = np.empty(count + 64, values.dtype)
    start = (-raw.ctypes.data % 64) // values.itemsize + offset
    view = raw[start : start + count].reshape(values.shape)
    view[...] = values
    return view


def _params(rng, n, dtype):
    return (rng.random(n) + 0.5).astype(dtype), rng.standard_normal(n).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_rows_off_a_vector_boundary_match_aligned_rows_bit_for_bit(isa, rng, op, rows, dtype):
    fn = getattr(simdnorm, op)
    for n in LENGTHS:
        x = rng.standard_normal((rows, n)).astype(dtype) * 3 + 1
        w, b = _params(rng, n, dtype)
        args = (w, b) if op == "layer_norm" else (w,)
        expected = {
            "affine": fn(_placed(x, 0), *args),
            "plain": fn(_placed(x, 0)),
        }
        for offset in OFFSETS:
            for kind, params in (("affine", args), ("plain", ())):
                out = _placed(np.zeros_like(x), offset)
                fn(_placed(x, 0), *params, out=out)
                np.testing.assert_array_equal(out, expected[kind], err_msg=f"{op} n={n} out offset {offset}")
                inplace = _placed(x, offset)
                fn(inplace, *params, out=inplace)
                np.testing.assert_array_equal(inplace, expected[kind], err_msg=f"{op} n={n} in place offset {offset}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_module_output_off_a_vector_boundary(isa, rng, dtype):
    n = 771
    module = simdnorm.LayerNorm(n, dtype=dtype)
    module.weight, module.bias = _params(rng, n, dtype)
    x = rng.standard_normal((3, n)).astype(dtype)
    expected = module(_placed(x, 0))
    for offset in OFFSETS:
        out = _placed(np.zeros_like(x), offset)
        module(x, out=out)
        np.testing.assert_array_equal(out, expected)
        inplace = _placed(x, offset)
        module(inplace, out=inplace)
        np.testing.assert_array_equal(inplace, expected)


# Batches past L1 (32 KiB of x) with rows of 1-4 KiB take the loop that normalizes one row while
# summing the next; its normalization starts at y's vector boundary, so with a head it runs one
# block fewer than the sums (768 = 12 blocks of 64 float32). 771: rows off each other's boundary.
# Rows of 4-16 KiB take that loop or groups of four rows (wide_rows_tuning).
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", ["layer_norm", "rms_norm"])
def test_batches_past_l1_off_a_vector_boundary_match_aligned_rows_bit_for_bit(isa, wide_rows_tuning, rng, op, dtype):
    fn = getattr(simdnorm, op)
    for n in (768, 771, 1000, 2048, 4096):
        x = rng.standard_normal((16, n)).astype(dtype) * 3 + 1
        w, b = _params(rng, n, dtype)
        args = (w, b) if op == "layer_norm" else (w,)
        expected = fn(_placed(x, 0), *args)
        np.testing.assert_array_equal(expected[5], fn(_placed(x[5:6], 0), *args)[0])  # as a row alone
        for offset in OFFSETS:
            out = _placed(np.zeros_like(x), offset)
            fn(_placed(x, 0), *args, out=out)
            np.testing.assert_array_equal(out, expected, err_msg=f"{op} n={n} out offset {offset}")
            inplace = _placed(x, offset)
            fn(inplace, *args, out=inplace)
            np.testing.assert_array_equal(inplace, expected, err_msg=f"{op} n={n} in place offset {offset}")
