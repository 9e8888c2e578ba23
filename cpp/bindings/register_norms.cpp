// layer_norm and rms_norm: check, release the GIL, call the dispatched operation.
#include <limits>

#include "array_args.hpp"
#include "call_layout.hpp"
#include "docstrings.hpp"
#include "kernel_calls.hpp"

namespace simdnorm::bindings {
namespace {

using namespace pybind11::literals;

double eps_value(py::handle eps, const py::array& x, bool none_is_machine_epsilon) {
    if (eps.is_none() && none_is_machine_epsilon) {
        return dtype_of(x) == Dtype::f32 ? double(std::numeric_limits<float>::epsilon())
                                         : std::numeric_limits<double>::epsilon();
    }
    if (!py::isinstance<py::float_>(eps) && !py::isinstance<py::int_>(eps) &&
        !py::hasattr(eps, "__float__")) {
        throw py::type_error("eps must be a number, got " + std::string(py::str(py::type::of(eps).attr("__name__"))));
    }
    return check_eps(py::float_(py::reinterpret_borrow<py::object>(eps)).cast<double>());
}

py::object norm_call(bool layer, py::handle x_obj, py::handle weight_obj, py::handle bias_obj, py::handle eps_obj,
                     py::handle axis, py::handle out, bool return_stats) {
    const py::array x = input_array(x_obj, "x");
    const std::vector<char> axes = normalized_axes(axis, static_cast<std::size_t>(x.ndim()));
    const double eps = eps_value(eps_obj, x, /*none_is_machine_epsilon=*/!layer);
    const std::vector<py::ssize_t> param_shape = flagged_shape(x, axes);
    const py::array weight = param_array(weight_obj, "weight", x, param_shape);
    const py::array bias = layer ? param_array(bias_obj, "bias", x, param_shape) : null_array();
    const CallLayout call = resolve_call_layout(x, axes, out);
    py::array mean = null_array(), rstd = null_array();
    if (return_stats) {
        mean = py::array(x.dtype(), kept_shape(x, axes));
        rstd = py::array(x.dtype(), kept_shape(x, axes));
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

}  // namespace

void register_norms(py::module_& m) {
    m.def(
        "layer_norm",
        [](py::handle x, py::handle weight, py::handle bias, py::handle eps, py::handle axis, py::handle out,
           bool return_stats) { return norm_call(true, x, weight, bias, eps, axis, out, return_stats); },
        "x"_a, "weight"_a = py::none(), "bias"_a = py::none(), py::kw_only(), "eps"_a = 1e-5, "axis"_a = -1,
        "out"_a = py::none(), "return_stats"_a = false, docs::layer_norm);
    m.def(
        "rms_norm",
        [](py::handle x, py::handle weight, py::handle eps, py::handle axis, py::handle out) {
            return norm_call(false, x, weight, py::none(), eps, axis, out, false);
        },
        "x"_a, "weight"_a = py::none(), py::kw_only(), "eps"_a = 1e-6, "axis"_a = -1, "out"_a = py::none(),
        docs::rms_norm);
}

}  // namespace simdnorm::bindings
