"""bench_norms.py's peers: the thread-count environment, and PyTorch / ONNX Runtime loaded and set up.

Nothing here imports numpy / torch / onnxruntime at module level: pin_threads() must run before
they are imported, and the loaders import them when called.
"""

import os

THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "SIMDNORM_NUM_THREADS",
)


def pin_threads(n):
    """Must run before numpy / torch / onnxruntime are imported."""
    for var in THREAD_ENV_VARS:
        os.environ[var] = str(n)


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
