// batch_norm, batch_stats, fold_batch_norm, scale_shift.
#include <cmath>
#include <cstring>
#include <vector>

#include "array_args.hpp"
#include "call_layout.hpp"
#include "channel_fold.hpp"
#include "channel_workspace.hpp"
#include "docstrings.hpp"
#include "kernel_calls.hpp"
#include "raw_call.hpp"

namespace simdnorm::bindings {
namespace {

using namespace pybind11::literals;

// Running statistics: 1-D float32/float64 arrays of length `channels`, updated in place.
py::array running_array(py::handle obj, const char* name, std::size_t channels, bool writable) {
    if (obj.is_none()) return null_array();
    if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + " must be a NumPy array or None");
    py::array a = py::reinterpret_borrow<py::array>(obj);
    if (!a.dtype().is(py::dtype::of<float>()) && !a.dtype().is(py::dtype::of<double>())) {
        throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " + dtype_name(a));
    }
    if (a.ndim() != 1 || static_cast<std::size_t>(a.shape(0)) != channels) {
        throw py::value_error(std::string(name) + " must have shape (" + std::to_string(channels) +
                              ",) (one value per channel)");
    }
    if (writable && !a.writeable()) throw py::value_error(std::string(name) + " is read-only but training updates it");
    if (writable && !(a.flags() & py::array::c_style)) {
        throw py::value_error(std::string(name) + " must be contiguous to be updated in place");
    }
    return a;
}

// A 1-D float32 / float64 array as doubles: one dtype branch, then a plain strided loop.
std::vector<double> to_doubles(const py::array& a) {
    const std::size_t n = static_cast<std::size_t>(a.shape(0));
    const py::ssize_t stride = a.strides(0);
    const char* p = static_cast<const char*>(a.data());
    std::vector<double> values(n);
    if (a.itemsize() == 4) {
        for (std::size_t i = 0; i < n; ++i) values[i] = *reinterpret_cast<const float*>(p + py::ssize_t(i) * stride);
    } else {
        for (std::size_t i = 0; i < n; ++i) values[i] = *reinterpret_cast<const double*>(p + py::ssize_t(i) * stride);
    }
    return values;
}

// Writes doubles into a contiguous 1-D float32 / float64 array.
void store_doubles(py::array& a, const std::vector<double>& values) {
    if (a.itemsize() == 4) {
        float* p = static_cast<float*>(a.mutable_data());
        for (std::size_t i = 0; i < values.size(); ++i) p[i] = static_cast<float>(values[i]);
    } else {
        double* p = static_cast<double*>(a.mutable_data());
        for (std::size_t i = 0; i < values.size(); ++i) p[i] = values[i];
    }
}

// Eval reads running statistics in place: a strided view is copied once, here.
const void* contiguous_data(py::array& a) {
    if (!(a.flags() & py::array::c_style)) a = ascontiguous(a);
    return a.data();
}

template <class T>
struct FoldedChannels {
    const T* center;  // null when not needed
    const T* scale;
    const T* offset;
};

// Eval: checks the running statistics of dtype S (ValueError naming the channel) and folds them
// with weight and bias, or finds that fold in the thread's memo when the inputs are byte-equal to
// the last call's (a remembered fold was checked when it was made).
template <class T, class S>
FoldedChannels<T> fold_running_stats(const WorkspaceLease& ws, std::size_t channels, py::array& running_mean,
                                     py::array& running_var, const T* weight, const T* bias, double eps) {
    const S* mean = static_cast<const S*>(contiguous_data(running_mean));
    const S* var = static_cast<const S*>(contiguous_data(running_var));
    FoldMemoKey key;
    key.channels = channels;
    key.x_itemsize = sizeof(T);
    key.stats_itemsize = sizeof(S);
    key.eps = eps;
    const void* arrays[4] = {mean, var, weight, bias};
    const std::size_t itemsizes[4] = {sizeof(S), sizeof(S), sizeof(T), sizeof(T)};
    for (int i = 0; i < 4; ++i) {
        key.arrays[i] = arrays[i];
        key.present[i] = arrays[i] != nullptr;
        key.bytes[i] = arrays[i] ? channels * itemsizes[i] : 0;
    }
    FoldMemo& memo = ws->eval_fold;
    const ChannelArrays<T> folded = memo.folded_for<T>(channels);
    if (!ws.kept() || !memo.matches(key)) {
        memo.forget();
        check_running_stats(channels, mean, var);
        const bool centered = fold_channels<T>(channels, RunningStatsSource<S>{mean, var, eps}, weight, bias,
                                               folded.center, folded.scale, folded.offset);
        if (ws.kept()) memo.remember(key, centered);
        return {centered ? folded.center : nullptr, folded.scale, folded.offset};
    }
    return {memo.centered() ? folded.center : nullptr, folded.scale, folded.offset};
}

// The running statistics' values from before the kernel, kept only when y (or the result it is
// copied into) overlaps them, as out= may; otherwise they are read in place after the kernel.
template <class S>
struct RunningBefore {
    std::vector<S> mean, var;  // both empty: read in place
};

template <class S>
RunningBefore<S> running_before_output(const CallLayout& call, const py::array& running_mean,
                                       const py::array& running_var) {
    RunningBefore<S> before;
    const auto written = [&](const py::array& a) {
        return may_share_memory(call.y, a) || may_share_memory(call.result, a);
    };
    if (running_mean && (written(running_mean) || written(running_var))) {
        const S* mean = static_cast<const S*>(running_mean.data());
        const S* var = static_cast<const S*>(running_var.data());
        before.mean.assign(mean, mean + running_mean.size());
        before.var.assign(var, var + running_var.size());
    }
    return before;
}

// Training, running statistics of dtype S (contiguous, checked by running_array; may be absent):
// the batch mean and M2 into the workspace and y, and the running statistics updated from them.
// The statistics' tasks update them (batch_norm_training_forward) unless they share memory with an
// array the call reads or writes; then they are updated after it, from the values they had before
// y was written (RunningBefore), as PyTorch leaves them.
template <class T, class S>
void train_batch_norm(const CallLayout& call, const py::array& weight, const py::array& bias, double eps,
                      ChannelWorkspace& ws, std::size_t channels, std::size_t count, py::array& running_mean,
                      py::array& running_var, double momentum) {
    double* const mean = ws.moments_for(2 * channels);
    double* const m2 = mean + channels;
    const T* const w = data_or_null<T>(weight);
    const T* const b = data_or_null<T>(bias);
    if (!running_mean) {
        batch_norm_training_forward<T, S>(call, w, b, eps, mean, m2, ws, nullptr);
        finish_call(call);
        return;
    }
    S* const running_mean_data = static_cast<S*>(running_mean.mutable_data());
    S* const running_var_data = static_cast<S*>(running_var.mutable_data());
    const RunningBefore<S> before = running_before_output<S>(call, running_mean, running_var);
    const auto read_by_call = [&](const py::array& a) {
        return may_share_memory(call.x, a) || (weight && may_share_memory(weight, a)) ||
               (bias && may_share_memory(bias, a));
    };
    if (before.mean.empty() && !read_by_call(running_mean) && !read_by_call(running_var)) {
        const RunningUpdateArgs<S> running = running_update_args<S>(running_mean_data, running_var_data, nullptr,
                                                                    nullptr, mean, m2, channels, count, momentum);
        const bool updated = batch_norm_training_forward<T, S>(call, w, b, eps, mean, m2, ws, &running);
        finish_call(call);
        if (!updated) simdnorm::update_running_stats(running);
        return;
    }
    batch_norm_training_forward<T, S>(call, w, b, eps, mean, m2, ws, nullptr);
    finish_call(call);
    simdnorm::update_running_stats(running_update_args<S>(running_mean_data, running_var_data,
                                                          before.mean.empty() ? nullptr : before.mean.data(),
                                                          before.var.empty() ? nullptr : before.var.data(), mean,
                                                          m2, channels, count, momentum));
}

std::size_t channel_count(const py::array& x, const std::vector<char>& axes) {
    for (std::size_t i = 0; i < axes.size(); ++i) {
        if (axes[i]) return static_cast<std::size_t>(x.shape(static_cast<py::ssize_t>(i)));
    }
    return 0;
}

// Values per channel: the product of the other axes (also when there are no channels).
std::size_t per_channel_count(const py::array& x, const std::vector<char>& axes) {
    std::size_t count = 1;
    for (std::size_t i = 0; i < axes.size(); ++i) {
        if (!axes[i]) count *= static_cast<std::size_t>(x.shape(static_cast<py::ssize_t>(i)));
    }
    return count;
}

// Everything after the argument checks of batch_norm, for x's dtype T. Per-channel values live in
// the thread's workspace; all checks (the running statistics' in eval) run before anything is
// written.
template <class T>
py::object run_batch_norm(const py::array& x, const std::vector<char>& axes, std::size_t channels, std::size_t count,
                          py::array& running_mean, py::array& running_var, const py::array& weight,
                          const py::array& bias, bool training, double momentum, double eps, py::handle out) {
    WorkspaceLease ws(channels);
    const T* w = data_or_null<T>(weight);
    const T* b = data_or_null<T>(bias);
    FoldedChannels<T> folded{};
    if (!training) {
        folded = running_mean.itemsize() == 4
                     ? fold_running_stats<T, float>(ws, channels, running_mean, running_var, w, b, eps)
                     : fold_running_stats<T, double>(ws, channels, running_mean, running_var, w, b, eps);
    }
    const CallLayout call = resolve_call_layout(x, axes, out);
    if (count == 0 || channels == 0) {  // empty batch: empty output, running statistics untouched
        finish_call(call);
        return call.result;
    }
    if (training) {
        if (running_mean && running_mean.itemsize() == 4) {
            train_batch_norm<T, float>(call, weight, bias, eps, *ws, channels, count, running_mean, running_var,
                                       momentum);
        } else {
            train_batch_norm<T, double>(call, weight, bias, eps, *ws, channels, count, running_mean, running_var,
                                        momentum);
        }
    } else {
        apply_channel_affine<T>(call, folded.center, folded.scale, folded.offset);
        finish_call(call);
    }
    return call.result;
}

py::object batch_norm(py::handle x_obj, py::handle running_mean_obj, py::handle running_var_obj, py::handle weight_obj,
                      py::handle bias_obj, bool training, double momentum, double eps, py::handle axis, py::handle out) {
    const py::array x = input_array(x_obj, "x");
    const std::vector<char> axes = single_axis(axis, static_cast<std::size_t>(x.ndim()), 2, "batch_norm");
    const std::size_t channels = channel_count(x, axes);
    check_eps(eps, dtype_of(x));
    const std::vector<py::ssize_t> param_shape{static_cast<py::ssize_t>(channels)};
    const py::array weight = param_array(weight_obj, "weight", x, param_shape);
    const py::array bias = param_array(bias_obj, "bias", x, param_shape);
    py::array running_mean = running_array(running_mean_obj, "running_mean", channels, training);
    py::array running_var = running_array(running_var_obj, "running_var", channels, training);
    if (static_cast<bool>(running_mean) != static_cast<bool>(running_var)) {
        throw py::value_error("running_mean and running_var must be given together (or both None)");
    }
    if (running_mean && !running_mean.dtype().is(running_var.dtype())) {
        throw py::type_error("running_mean and running_var must have the same dtype, got " + dtype_name(running_mean) +
                             " and " + dtype_name(running_var));
    }
    const std::size_t count = per_channel_count(x, axes);
    if (training) {
        if (!std::isfinite(momentum) || momentum < 0.0 || momentum > 1.0) {
            throw py::value_error("momentum must be a number in [0, 1], got " + std::to_string(momentum));
        }
        if (count == 1) {
            throw py::value_error("Expected more than 1 value per channel when training, got input size " +
                                  std::string(py::str(x.attr("shape"))) +
                                  "; for one sample at a time use streaming statistics (simdnorm.RunningStats)");
        }
    } else {
        if (!running_mean) throw py::value_error("running_mean and running_var are required when training=False");
    }
    return dtype_of(x) == Dtype::f32 ? run_batch_norm<float>(x, axes, channels, count, running_mean, running_var,
                                                              weight, bias, training, momentum, eps, out)
                                     : run_batch_norm<double>(x, axes, channels, count, running_mean, running_var,
                                                               weight, bias, training, momentum, eps, out);
}

py::tuple batch_stats(py::handle x_obj, py::handle axis) {
    const py::array x = input_array(x_obj, "x");
    const std::vector<char> axes = single_axis(axis, static_cast<std::size_t>(x.ndim()), 1, "batch_stats");
    const std::size_t channels = channel_count(x, axes);
    const std::size_t count = per_channel_count(x, axes);
    Layout layout;
    py::array source = x;
    if (!describe_layout(x, axes, &layout)) {
        source = ascontiguous(move_axes_to_end(x, axes));
        std::vector<char> last(axes.size(), 0);
        last.back() = 1;
        describe_layout(source, last, &layout);
    }
    CallLayout call;
    call.x = source;
    call.x_layout = layout;
    std::vector<double> mean(channels), m2(channels);
    if (dtype_of(x) == Dtype::f32) {
        compute_batch_stats<float>(call, mean.data(), m2.data());
    } else {
        compute_batch_stats<double>(call, mean.data(), m2.data());
    }
    py::array_t<double> mean_out(static_cast<py::ssize_t>(channels)), var_out(static_cast<py::ssize_t>(channels));
    // Through raw pointers: mutable_at's per-element checks cost ~4 us at 768 channels.
    double* const mean_data = mean_out.mutable_data();
    double* const var_data = var_out.mutable_data();
    for (std::size_t c = 0; c < channels; ++c) {
        mean_data[c] = mean[c];
        var_data[c] = m2[c] / double(count);  // NaN for an empty batch, as numpy.var
    }
    return py::make_tuple(mean_out, var_out, count);
}

py::tuple fold_batch_norm(py::handle running_mean_obj, py::handle running_var_obj, py::handle weight_obj,
                          py::handle bias_obj, double eps) {
    const py::array running_mean = input_array(running_mean_obj, "running_mean");
    check_eps(eps, dtype_of(running_mean));
    if (running_mean.ndim() != 1) throw py::value_error("running_mean must be 1-D (one value per channel)");
    const std::size_t channels = static_cast<std::size_t>(running_mean.shape(0));
    const py::array running_var = running_array(running_var_obj, "running_var", channels, false);
    if (!running_var) throw py::value_error("running_var is required");
    if (!running_var.dtype().is(running_mean.dtype())) {
        throw py::type_error("running_var must have the dtype of running_mean (" + dtype_name(running_mean) + ")");
    }
    const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(channels)};
    const py::array weight = param_array(weight_obj, "weight", running_mean, shape);
    const py::array bias = param_array(bias_obj, "bias", running_mean, shape);
    const std::vector<double> mean = to_doubles(running_mean), var = to_doubles(running_var);
    check_running_stats(channels, mean.data(), var.data());
    const std::vector<double> w = weight ? to_doubles(weight) : std::vector<double>(channels, 1.0);
    const std::vector<double> b = bias ? to_doubles(bias) : std::vector<double>(channels, 0.0);
    std::vector<double> scale(channels), shift(channels);
    for (std::size_t c = 0; c < channels; ++c) {
        scale[c] = w[c] / std::sqrt(var[c] + eps);
        shift[c] = b[c] - mean[c] * scale[c];
    }
    py::array scale_out(running_mean.dtype(), shape), shift_out(running_mean.dtype(), shape);
    store_doubles(scale_out, scale);
    store_doubles(shift_out, shift);
    return py::make_tuple(scale_out, shift_out);
}

// y = x * scale + shift through copies of scale and shift in the thread's workspace (cache-line
// aligned; out may alias the originals).
template <class T>
void run_scale_shift(const CallLayout& call, std::size_t channels, const py::array& scale, const py::array& shift) {
    WorkspaceLease ws(channels);
    const ChannelArrays<T> copies = ws->folded_for<T>(channels);
    if (channels) {
        std::memcpy(copies.scale, scale.data(), channels * sizeof(T));
        std::memcpy(copies.offset, shift.data(), channels * sizeof(T));
    }
    apply_channel_affine<T>(call, nullptr, copies.scale, copies.offset);
}

py::object scale_shift(py::handle x_obj, py::handle scale_obj, py::handle shift_obj, py::handle axis, py::handle out) {
    const py::array x = input_array(x_obj, "x");
    const std::vector<char> axes = single_axis(axis, static_cast<std::size_t>(x.ndim()), 1, "scale_shift");
    const std::size_t channels = channel_count(x, axes);
    const std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(channels)};
    if (scale_obj.is_none() || shift_obj.is_none()) throw py::type_error("scale and shift are required arrays");
    const py::array scale = param_array(scale_obj, "scale", x, shape);
    const py::array shift = param_array(shift_obj, "shift", x, shape);
    const CallLayout call = resolve_call_layout(x, axes, out);
    if (dtype_of(x) == Dtype::f32) {
        run_scale_shift<float>(call, channels, scale, shift);
    } else {
        run_scale_shift<double>(call, channels, scale, shift);
    }
    finish_call(call);
    return call.result;
}

// Channel axis 1 unless given (leaked: outlives the interpreter's teardown).
py::handle axis_or_default(PyObject* axis) {
    static const py::handle channels_first = py::int_(1).release();
    return axis ? py::handle(axis) : channels_first;
}

PyObject* fast_batch_norm(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    return guarded([&]() -> PyObject* {
        static const char* const names[] = {"x",        "running_mean", "running_var", "weight", "bias",
                                            "training", "momentum",     "eps",         "axis",   "out"};
        PyObject* v[10];
        parse_arguments("batch_norm", args, nargs, kwnames, names, 10, 5, 1, v);
        return batch_norm(v[0], or_none(v[1]), or_none(v[2]), or_none(v[3]), or_none(v[4]), flag_argument(v[5], false),
                          number_argument(v[6], 0.1, "momentum"), number_argument(v[7], 1e-5, "eps"),
                          axis_or_default(v[8]), or_none(v[9]))
            .release()
            .ptr();
    });
}

PyObject* fast_scale_shift(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    return guarded([&]() -> PyObject* {
        static const char* const names[] = {"x", "scale", "shift", "axis", "out"};
        PyObject* v[5];
        parse_arguments("scale_shift", args, nargs, kwnames, names, 5, 3, 3, v);
        return scale_shift(v[0], v[1], v[2], axis_or_default(v[3]), or_none(v[4])).release().ptr();
    });
}

}  // namespace

void register_batch_norm(py::module_& m) {
    // The per-call entry points are METH_FASTCALL functions (raw_call.hpp); the rest use pybind11.
    add_fast_function(m, "batch_norm", &fast_batch_norm,
                      "batch_norm(x, running_mean=None, running_var=None, weight=None, bias=None, *, training=False, "
                      "momentum=0.1, eps=1e-05, axis=1, out=None)",
                      docs::batch_norm);
    m.def("batch_stats", &batch_stats, "x"_a, py::kw_only(), "axis"_a = 1, docs::batch_stats);
    m.def("fold_batch_norm", &fold_batch_norm, "running_mean"_a, "running_var"_a, "weight"_a = py::none(),
          "bias"_a = py::none(), py::kw_only(), "eps"_a = 1e-5, docs::fold_batch_norm);
    add_fast_function(m, "scale_shift", &fast_scale_shift, "scale_shift(x, scale, shift, *, axis=1, out=None)",
                      docs::scale_shift);
}

}  // namespace simdnorm::bindings
