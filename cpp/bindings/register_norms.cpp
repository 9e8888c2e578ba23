// layer_norm and rms_norm: check, release the GIL, call the dispatched operation.
#include <limits>

#include "array_args.hpp"
#include "call_layout.hpp"
#include "docstrings.hpp"
#include "kernel_calls.hpp"
#include "output_buffers.hpp"
#include "raw_call.hpp"

namespace simdnorm::bindings {
namespace {

// eps: absent -> `fallback`; None -> machine epsilon where allowed (rms_norm).
double eps_value(PyObject* eps_obj, double fallback, const py::array& x, bool none_is_machine_epsilon) {
    if (!eps_obj) return fallback;
    const py::handle eps(eps_obj);
    if (eps.is_none() && none_is_machine_epsilon) {
        return dtype_of(x) == Dtype::f32 ? double(std::numeric_limits<float>::epsilon())
                                         : std::numeric_limits<double>::epsilon();
    }
    if (!py::isinstance<py::float_>(eps) && !py::isinstance<py::int_>(eps) &&
        !py::hasattr(eps, "__float__")) {
        throw py::type_error("eps must be a number, got " + std::string(py::str(py::type::of(eps).attr("__name__"))));
    }
    return check_eps(py::float_(py::reinterpret_borrow<py::object>(eps)).cast<double>(), dtype_of(x));
}

// Arguments as parsed by the fast entry points: null = not given.
py::object norm_call(bool layer, PyObject* x_obj, PyObject* weight_obj, PyObject* bias_obj, PyObject* eps_obj,
                     PyObject* axis_obj, PyObject* out_obj, PyObject* return_stats_obj) {
    static const py::handle last_axis = py::int_(-1).release();  // leaked: outlives the interpreter's teardown
    const py::array x = input_array(x_obj, "x");
    const double eps = eps_value(eps_obj, layer ? 1e-5 : 1e-6, x, /*none_is_machine_epsilon=*/!layer);
    int return_stats = 0;
    if (return_stats_obj && (return_stats = PyObject_IsTrue(return_stats_obj)) < 0) throw py::error_already_set();
    const py::handle weight_obj_or_none = or_none(weight_obj), bias_obj_or_none = or_none(bias_obj), out = or_none(out_obj);
    // The default axis over a C-contiguous x (and a plain out) skips the axis analysis: ~0.05 us of a
    // 0.4 us single-row call (tuning log 27). Everything else takes the general layout.
    CallLayout call;
    std::vector<char> axes;
    std::vector<py::ssize_t> param_shape;
    if (!axis_obj && !return_stats && x.ndim() >= 1 &&
        contiguous_rows_call(x, static_cast<std::size_t>(x.shape(x.ndim() - 1)), out, functions_recycled_output(), &call)) {
        param_shape.assign(1, x.shape(x.ndim() - 1));
    } else {
        axes = normalized_axes(axis_obj ? py::handle(axis_obj) : last_axis, static_cast<std::size_t>(x.ndim()));
        param_shape = flagged_shape(x, axes);
        call = resolve_call_layout(x, axes, out);
    }
    // The rows are written one after another while every row reads the whole weight and bias: an
    // out= holding them gets them copied first (a fresh output cannot hold them).
    py::array weight = param_array(weight_obj_or_none, "weight", x, param_shape);
    py::array bias = layer ? param_array(bias_obj_or_none, "bias", x, param_shape) : null_array();
    if (!out.is_none()) read_parameters_apart(call.y, &weight, &bias);
    py::array mean = null_array(), rstd = null_array();
    if (return_stats) {
        const std::vector<py::ssize_t> stats_shape = kept_shape(x, axes);
        const std::size_t stats_bytes = element_count(stats_shape) * static_cast<std::size_t>(x.itemsize());
        const int stats_ndim = static_cast<int>(stats_shape.size());
        mean = new_output(x.dtype(), stats_ndim, stats_shape.data(), stats_bytes);
        rstd = new_output(x.dtype(), stats_ndim, stats_shape.data(), stats_bytes);
    }
    const auto elements = static_cast<std::size_t>(x.size());
    if (dtype_of(x) == Dtype::f32) {
        NormArgs<float> args = norm_args<float>(call, data_or_null<float>(weight), data_or_null<float>(bias), eps);
        args.mean = mean ? static_cast<float*>(mean.mutable_data()) : nullptr;
        args.rstd = rstd ? static_cast<float*>(rstd.mutable_data()) : nullptr;
        run_norm(layer, args, elements);
    } else {
        NormArgs<double> args = norm_args<double>(call, data_or_null<double>(weight), data_or_null<double>(bias), eps);
        args.mean = mean ? static_cast<double*>(mean.mutable_data()) : nullptr;
        args.rstd = rstd ? static_cast<double*>(rstd.mutable_data()) : nullptr;
        run_norm(layer, args, elements);
    }
    finish_call(call);
    if (return_stats) return py::make_tuple(call.result, mean, rstd);
    return call.result;
}

PyObject* fast_layer_norm(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    return guarded([&]() -> PyObject* {
        static const char* const names[] = {"x", "weight", "bias", "eps", "axis", "out", "return_stats"};
        PyObject* v[7];
        parse_arguments("layer_norm", args, nargs, kwnames, names, 7, 3, 1, v);
        return norm_call(true, v[0], v[1], v[2], v[3], v[4], v[5], v[6]).release().ptr();
    });
}

PyObject* fast_rms_norm(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    return guarded([&]() -> PyObject* {
        static const char* const names[] = {"x", "weight", "eps", "axis", "out"};
        PyObject* v[5];
        parse_arguments("rms_norm", args, nargs, kwnames, names, 5, 2, 1, v);
        return norm_call(false, v[0], v[1], nullptr, v[2], v[3], v[4], nullptr).release().ptr();
    });
}

}  // namespace

void register_norms(py::module_& m) {
    add_fast_function(m, "layer_norm", &fast_layer_norm,
                      "layer_norm(x, weight=None, bias=None, *, eps=1e-05, axis=-1, out=None, return_stats=False)",
                      docs::layer_norm);
    add_fast_function(m, "rms_norm", &fast_rms_norm, "rms_norm(x, weight=None, *, eps=1e-06, axis=-1, out=None)",
                      docs::rms_norm);
}

}  // namespace simdnorm::bindings
