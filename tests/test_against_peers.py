"""simdnorm against libraries we did not write: PyTorch and ONNX Runtime (optional test extras).

Skipped when the peer is not installed (it is not a dependency: `pip install torch==2.13.0
onnxruntime onnx` to run them). Every ISA this machine can run.
"""

import numpy as np
import pytest

import simdnorm

torch = pytest.importorskip("torch", reason="PyTorch not installed (optional peer check)")

F32_ATOL = 5e-6  # float32 outputs of unit scale; both sides round differently


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.mark.parametrize("shape,k", [((3, 17), 1), ((2, 5, 33), 1), ((2, 5, 33), 2), ((4, 768), 1), ((1, 4097), 1)])
def test_layer_norm_matches_torch_native_layer_norm(isa, rng, shape, k):
    x = (rng.standard_normal(shape) * 3 + 2).astype(np.float32)
    ns = shape[k:]
    w, b = rng.standard_normal(ns).astype(np.float32), rng.standard_normal(ns).astype(np.float32)
    y, mean, rstd = simdnorm.layer_norm(x, w, b, axis=k, return_stats=True)
    ty, tm, tr = torch.native_layer_norm(t(x), list(ns), t(w), t(b), 1e-5)
    np.testing.assert_allclose(y, ty.numpy(), atol=F32_ATOL * 4, rtol=0)
    np.testing.assert_allclose(mean, tm.numpy(), atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(rstd, tr.numpy(), rtol=1e-6)


@pytest.mark.parametrize("eps", [1e-6, None])
def test_rms_norm_matches_torch(isa, rng, eps):
    x = rng.standard_normal((5, 2, 300)).astype(np.float32)
    w = rng.standard_normal((2, 300)).astype(np.float32)
    got = simdnorm.rms_norm(x, w, axis=1, eps=eps)
    expected = torch.nn.functional.rms_norm(t(x), [2, 300], t(w), eps).numpy()
    np.testing.assert_allclose(got, expected, atol=F32_ATOL, rtol=1e-6)


def test_channels_first_layer_norm_matches_torch_on_permuted_input(isa, rng):
    x = rng.standard_normal((2, 96, 7, 9)).astype(np.float32)
    w, b = rng.standard_normal(96).astype(np.float32), rng.standard_normal(96).astype(np.float32)
    got = simdnorm.layer_norm(x, w, b, axis=(1,), eps=1e-6)
    expected = torch.nn.functional.layer_norm(t(x).permute(0, 2, 3, 1), [96], t(w), t(b), 1e-6).permute(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected.numpy(), atol=F32_ATOL, rtol=0)


@pytest.mark.parametrize("shape", [(8, 6, 5, 4), (16, 10), (4, 3, 50)])
def test_batch_norm_step_sequence_matches_torch(isa, rng, shape):
    channels = shape[1]
    rm, rv = np.zeros(channels, np.float32), np.ones(channels, np.float32)
    trm, trv = torch.zeros(channels), torch.ones(channels)
    w, b = rng.standard_normal(channels).astype(np.float32), rng.standard_normal(channels).astype(np.float32)
    for step in range(5):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        y = simdnorm.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1)
        ty = torch.nn.functional.batch_norm(t(x), trm, trv, t(w), t(b), True, 0.1, 1e-5)
        np.testing.assert_allclose(y, ty.numpy(), atol=F32_ATOL, rtol=0)
    np.testing.assert_allclose(rm, trm.numpy(), atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-6)
    x = rng.standard_normal(shape).astype(np.float32)
    y = simdnorm.batch_norm(x, rm, rv, w, b)
    expected = torch.nn.functional.batch_norm(t(x), trm, trv, t(w), t(b), False, 0.1, 1e-5).numpy()
    np.testing.assert_allclose(y, expected, atol=F32_ATOL, rtol=0)


def test_large_offset_beats_torch_float32(isa, rng):
    x = (rng.standard_normal((8, 768)) + 1e6).astype(np.float32)
    reference = torch.nn.functional.layer_norm(t(x).double(), [768]).numpy()
    assert np.abs(simdnorm.layer_norm(x) - reference).max() <= 4e-6


def _ort_session(node, inputs, outputs, opset):
    onnx = pytest.importorskip("onnx", reason="onnx not installed (optional peer check)")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (optional peer check)")
    helper, tensor = onnx.helper, onnx.TensorProto
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, tensor.FLOAT, a.shape) for n, a in inputs.items()],
        [helper.make_tensor_value_info(o, tensor.FLOAT, None) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, inputs)


@pytest.mark.parametrize("shape,k", [((3, 17), 1), ((2, 5, 33), 1), ((4, 768), -1)])
def test_layer_norm_matches_onnxruntime(isa, rng, shape, k):
    onnx = pytest.importorskip("onnx", reason="onnx not installed (optional peer check)")
    x = rng.standard_normal(shape).astype(np.float32)
    ns = shape[k:]
    w, b = rng.standard_normal(ns).astype(np.float32), rng.standard_normal(ns).astype(np.float32)
    node = onnx.helper.make_node("LayerNormalization", ["x", "w", "b"], ["y", "m", "r"], axis=k, epsilon=1e-5)
    y, mean, inv_std = _ort_session(node, {"x": x, "w": w, "b": b}, ["y", "m", "r"], 17)
    got, got_mean, got_rstd = simdnorm.layer_norm(x, w, b, axis=k, return_stats=True)
    np.testing.assert_allclose(got, y, atol=F32_ATOL, rtol=0)
    np.testing.assert_allclose(got_mean, mean, atol=1e-6)
    np.testing.assert_allclose(got_rstd, inv_std, rtol=1e-6)


def test_batch_norm_eval_matches_onnxruntime(isa, rng):
    onnx = pytest.importorskip("onnx", reason="onnx not installed (optional peer check)")
    x = rng.standard_normal((8, 6, 5, 4)).astype(np.float32)
    s, b, m = (rng.standard_normal(6).astype(np.float32) for _ in range(3))
    v = rng.uniform(0.5, 2.0, 6).astype(np.float32)
    node = onnx.helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-5)
    (y,) = _ort_session(node, {"x": x, "s": s, "b": b, "m": m, "v": v}, ["y"], 15)
    np.testing.assert_allclose(simdnorm.batch_norm(x, m, v, s, b), y, atol=F32_ATOL, rtol=0)
