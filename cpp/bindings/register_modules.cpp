// The module classes LayerNorm, RMSNorm and BatchNorm: parameters held by the C++ object, the call
// bound directly (checks in C++, then the dispatched kernels through kernel_calls.hpp).
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "array_args.hpp"
#include "call_layout.hpp"
#include "channel_fold.hpp"
#include "channel_workspace.hpp"
#include "kernel_calls.hpp"
#include "module_docstrings.hpp"
#include "output_buffers.hpp"
#include "raw_call.hpp"
#include "recycled_output.hpp"

namespace simdnorm::bindings {
namespace {

using namespace pybind11::literals;

using Shape = std::vector<py::ssize_t>;


py::object numpy() { return py::module_::import("numpy"); }

std::string float_repr(double v) { return py::repr(py::float_(v)).cast<std::string>(); }

// ---- Parameters and buffers ---------------------------------------------------------------------

// A parameter or buffer owned by a module: the module writes it, Python sees a read-only array.
// The memory belongs to a capsule, not to an array, so NumPy refuses to make any view of it
// writeable again (setflags(write=True) raises): in-place writes cannot bypass the setters.
class Param {
public:
    Param() = default;
    Param(const py::dtype& dtype, const Shape& shape, double fill) : shape_(shape) {
        const std::size_t count = element_count(shape);
        void* memory = std::calloc(count ? count : 1, static_cast<std::size_t>(dtype.itemsize()));
        if (!memory) throw std::bad_alloc();
        const py::capsule owner(memory, [](void* p) { std::free(p); });
        array_ = py::array(dtype, shape, Shape{}, memory, owner);
        py::detail::array_proxy(array_.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
        const char kind = dtype.kind();
        for (std::size_t i = 0; i < count; ++i) {
            if (kind == 'f' && dtype.itemsize() == 4) {
                data<float>()[i] = static_cast<float>(fill);
            } else if (kind == 'f') {
                data<double>()[i] = fill;
            } else {
                data<std::int64_t>()[i] = static_cast<std::int64_t>(fill);
            }
        }
    }

    explicit operator bool() const { return static_cast<bool>(array_); }
    py::object get() const { return array_ ? py::object(array_) : py::object(py::none()); }
    const Shape& shape() const { return shape_; }
    std::size_t size() const { return element_count(shape_); }
    template <class T>
    T* data() const {
        return array_ ? static_cast<T*>(const_cast<void*>(array_.data())) : nullptr;
    }
    py::dtype dtype() const { return array_.dtype(); }

    // A writeable copy (state_dict).
    py::array copy() const { return array_.attr("copy")(); }
    // A new Param with its own memory and the same values.
    Param clone() const {
        if (!array_) return Param();
        Param p(array_.dtype(), shape_, 0.0);
        p.assign(array_);
        return p;
    }
    // value: C-contiguous, this dtype and shape (see staged_value).
    void assign(const py::array& value) {
        std::memcpy(data<char>(), value.data(), size() * static_cast<std::size_t>(array_.itemsize()));
    }

private:
    py::array array_ = null_array();
    Shape shape_;
};

enum class ValueKind { real, count };

// A value for a parameter or buffer, validated and converted (a fresh C-contiguous array of
// `dtype`), before anything is written. TypeError / ValueError name the key.
py::array staged_value(py::handle value, const std::string& name, const py::dtype& dtype, const Shape& shape,
                       ValueKind kind) {
    if (value.is_none()) throw py::type_error(name + " must be an array, got None");
    py::array a = null_array();
    try {
        a = numpy().attr("asarray")(value);
    } catch (py::error_already_set& e) {
        throw py::type_error(name + " must be an array: " + std::string(e.what()));
    }
    const char k = a.dtype().kind();
    const bool numeric = kind == ValueKind::count ? (k == 'i' || k == 'u') : (k == 'f' || k == 'i' || k == 'u');
    if (!numeric) {
        throw py::type_error(name + (kind == ValueKind::count ? " must be an integer" : " must be a real-valued array") +
                             ", got dtype " + dtype_name(a));
    }
    if (!has_shape(a, shape)) {
        throw py::value_error("size mismatch for " + name + ": expected shape " + shape_string(shape) + ", got " +
                              shape_string(shape_of(a)));
    }
    if (k == 'f' && a.itemsize() > dtype.itemsize()) {  // float64 values beyond float32's range would become inf
        const py::object np = numpy();
        const py::object finite_magnitudes = np.attr("abs")(np.attr("where")(np.attr("isfinite")(a), a, 0.0));
        if (py::bool_(np.attr("any")(np.attr("greater")(finite_magnitudes, double(FLT_MAX))))) {
            throw py::value_error(name + " has values beyond the range of " + py::str(dtype).cast<std::string>());
        }
    }
    py::array converted = numpy().attr("array")(a, "dtype"_a = dtype, "copy"_a = true, "order"_a = "C");
    if (kind == ValueKind::count && *static_cast<const std::int64_t*>(converted.data()) < 0) {
        throw py::value_error(name + " must be >= 0");
    }
    return converted;
}

void check_nonnegative(const py::array& staged, const std::string& name) {
    const bool f32 = staged.itemsize() == 4;
    for (py::ssize_t i = 0; i < staged.size(); ++i) {
        const double v = f32 ? double(static_cast<const float*>(staged.data())[i])
                             : static_cast<const double*>(staged.data())[i];
        if (v < 0.0) throw py::value_error(name + " must be >= 0 (a variance), element " + std::to_string(i) + " is " + float_repr(v));
    }
}

// One parameter or buffer of a module, as seen by state_dict / load_state_dict.
struct Entry {
    const char* key;
    Param* param;
    ValueKind kind;
};

py::dict state_dict_of(const std::vector<Entry>& entries) {
    py::dict d;
    for (const Entry& e : entries) {
        if (*e.param) d[e.key] = e.param->copy();
    }
    return d;
}

// Validates everything, then writes. `optional_key`: may be missing even when strict (PyTorch's
// num_batches_tracked); it then keeps its value.
void load_state(const std::vector<Entry>& entries, py::handle state, bool strict, const char* owner,
                const char* optional_key = nullptr) {
    if (!py::isinstance<py::dict>(state) && !py::hasattr(state, "keys")) {
        throw py::type_error(std::string(owner) + ".load_state_dict: expected a mapping of names to arrays");
    }
    const py::dict d(py::reinterpret_borrow<py::object>(state));
    std::vector<std::string> missing, unexpected;
    std::vector<std::pair<Param*, py::array>> staged;
    for (auto item : d) {
        bool known = false;
        if (py::isinstance<py::str>(item.first)) {
            const std::string key = item.first.cast<std::string>();
            for (const Entry& e : entries) known = known || (*e.param && key == e.key);
        }
        if (!known) unexpected.push_back(py::repr(item.first).cast<std::string>());
    }
    for (const Entry& e : entries) {
        if (!*e.param) continue;
        if (!d.contains(e.key)) {
            if (!(optional_key && std::strcmp(optional_key, e.key) == 0)) missing.push_back(std::string("'") + e.key + "'");
            continue;
        }
        py::array value = staged_value(d[e.key], e.key, e.param->dtype(), e.param->shape(), e.kind);
        if (std::strcmp(e.key, "running_var") == 0) check_nonnegative(value, e.key);
        staged.emplace_back(e.param, value);
    }
    if (strict && (!missing.empty() || !unexpected.empty())) {
        std::string message = std::string("Error(s) in loading state_dict for ") + owner + ":";
        auto join = [](const std::vector<std::string>& keys) {
            std::string s;
            for (std::size_t i = 0; i < keys.size(); ++i) s += (i ? ", " : "") + keys[i];
            return s;
        };
        if (!missing.empty()) message += " Missing key(s): " + join(missing) + ".";
        if (!unexpected.empty()) message += " Unexpected key(s): " + join(unexpected) + ".";
        throw py::value_error(message);
    }
    for (auto& [param, value] : staged) param->assign(value);
}

// Property setter: absent parameters accept only None; present ones refuse None.
void set_param(Param& param, py::handle value, const char* name, ValueKind kind, const char* absent_reason) {
    if (!param) {
        if (value.is_none()) return;
        throw py::value_error(std::string(name) + " is None for this module (" + absent_reason + ") and cannot be set");
    }
    if (value.is_none()) {
        throw py::value_error(std::string("cannot set ") + name + " to None; construct the module without it");
    }
    py::array staged = staged_value(value, name, param.dtype(), param.shape(), kind);
    if (std::strcmp(name, "running_var") == 0) check_nonnegative(staged, name);
    param.assign(staged);
}

// ---- Arguments ---------------------------------------------------------------------------------

py::dtype module_dtype(py::handle obj) {
    const py::dtype d = py::dtype::from_args(py::reinterpret_borrow<py::object>(obj));
    if (d.kind() == 'f' && d.itemsize() == 4) return py::dtype::of<float>();
    if (d.kind() == 'f' && d.itemsize() == 8) return py::dtype::of<double>();
    throw py::type_error("dtype must be float32 or float64, got " + py::str(d).cast<std::string>());
}

bool is_f32(const py::dtype& d) { return d.itemsize() == 4; }

double number(py::handle obj, const char* name) {
    if (py::isinstance<py::bool_>(obj) ||
        !(py::isinstance<py::float_>(obj) || py::isinstance<py::int_>(obj) || py::hasattr(obj, "__float__"))) {
        throw py::type_error(std::string(name) + " must be a number, got " +
                             py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
    }
    return py::float_(py::reinterpret_borrow<py::object>(obj)).cast<double>();
}

py::ssize_t size_arg(py::handle obj, const char* name) {
    if (py::isinstance<py::bool_>(obj) || !(py::isinstance<py::int_>(obj) || py::hasattr(obj, "__index__"))) {
        throw py::type_error(std::string(name) + " must be an int or a tuple of ints, got " +
                             py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
    }
    const long long v = int_value(py::int_(py::reinterpret_borrow<py::object>(obj)), name);
    if (v < 0) throw py::value_error(std::string(name) + " must be >= 0, got " + std::to_string(v));
    return static_cast<py::ssize_t>(v);
}

// x as an ndarray of the module's dtype: ndarrays must already have it (no silent conversion),
// other array-likes (lists) are converted to it.
py::array module_input(py::handle x, const py::dtype& dtype, const char* owner) {
    if (py::isinstance<py::array>(x)) {
        py::array a = py::reinterpret_borrow<py::array>(x);
        if (a.dtype().is(dtype)) return a;
        a = input_array(x, "x");  // TypeError for non-float and non-native byte order
        if (a.itemsize() == dtype.itemsize()) return a;
        throw py::type_error(std::string(owner) + ": x must have the module's dtype " + py::str(dtype).cast<std::string>() +
                             ", got " + dtype_name(a) + " (convert explicitly, or construct the module with dtype=" +
                             dtype_name(a) + ")");
    }
    return input_array(numpy().attr("asarray")(x, dtype), "x");
}

// ---- LayerNorm / RMSNorm -------------------------------------------------------------------------

struct NormModule {
    NormModule(bool layer_, py::handle normalized_shape_obj, py::handle eps_obj, bool elementwise_affine_, bool bias_,
               py::handle dtype_obj)
        : layer(layer_), elementwise_affine(elementwise_affine_), has_bias(layer_ && bias_),
          dtype(module_dtype(dtype_obj)) {
        if (py::isinstance<py::tuple>(normalized_shape_obj) || py::isinstance<py::list>(normalized_shape_obj)) {
            for (py::handle item : py::reinterpret_borrow<py::sequence>(normalized_shape_obj)) {
                normalized_shape.push_back(size_arg(item, "normalized_shape"));
            }
            if (normalized_shape.empty()) throw py::value_error("normalized_shape must name at least one axis, got ()");
        } else {
            normalized_shape.push_back(size_arg(normalized_shape_obj, "normalized_shape"));
        }
        mid = element_count(normalized_shape);
        set_eps(eps_obj);
        if (elementwise_affine) {
            weight = Param(dtype, normalized_shape, 1.0);
            if (has_bias) bias = Param(dtype, normalized_shape, 0.0);
        }
    }

    const char* name() const { return layer ? "LayerNorm" : "RMSNorm"; }

    void set_eps(py::handle eps_obj) {
        if (eps_obj.is_none() && !layer) {
            eps = is_f32(dtype) ? double(std::numeric_limits<float>::epsilon()) : std::numeric_limits<double>::epsilon();
        } else {
            eps = check_eps(number(eps_obj, "eps"), is_f32(dtype) ? Dtype::f32 : Dtype::f64);
        }
        eps_arg = py::reinterpret_borrow<py::object>(eps_obj);
    }

    py::object call(py::handle x_obj, py::handle out) {
        const py::array x = module_input(x_obj, dtype, name());
        const std::size_t k = normalized_shape.size(), ndim = static_cast<std::size_t>(x.ndim());
        bool fits = ndim >= k;
        for (std::size_t i = 0; fits && i < k; ++i) fits = x.shape(static_cast<py::ssize_t>(ndim - k + i)) == normalized_shape[i];
        if (!fits) {
            throw py::value_error(std::string(name()) + ": given normalized_shape=" + shape_string(normalized_shape) +
                                  ", expected input with shape (*, " + shape_string(normalized_shape).substr(1) +
                                  ", but got input of shape " + shape_string(shape_of(x)));
        }
        CallLayout call;
        if (!contiguous_rows_call(x, mid, out, recycled_output, &call)) {
            std::vector<char> axes(ndim, 0);
            for (std::size_t i = ndim - k; i < ndim; ++i) axes[i] = 1;
            call = resolve_call_layout(x, axes, out);
        }
        const auto elements = static_cast<std::size_t>(x.size());
        if (is_f32(dtype)) {
            run_norm(layer, norm_args<float>(call, weight.data<float>(), bias.data<float>(), eps), elements);
        } else {
            run_norm(layer, norm_args<double>(call, weight.data<double>(), bias.data<double>(), eps), elements);
        }
        finish_call(call);
        return call.result;
    }

    std::vector<Entry> entries() {
        return {{"weight", &weight, ValueKind::real}, {"bias", &bias, ValueKind::real}};
    }

    py::tuple normalized_shape_tuple() const {
        py::tuple t(normalized_shape.size());
        for (std::size_t i = 0; i < normalized_shape.size(); ++i) t[i] = py::int_(normalized_shape[i]);
        return t;
    }

    std::string repr() const {
        std::string s = std::string(name()) + "(" + py::repr(normalized_shape_tuple()).cast<std::string>() +
                        ", eps=" + py::repr(eps_arg).cast<std::string>() +
                        ", elementwise_affine=" + (elementwise_affine ? "True" : "False");
        if (layer) s += std::string(", bias=") + (has_bias ? "True" : "False");
        if (!is_f32(dtype)) s += ", dtype=" + py::str(dtype).cast<std::string>();
        return s + ")";
    }

    py::tuple get_state() {
        return py::make_tuple(1, normalized_shape_tuple(), eps_arg, elementwise_affine, has_bias,
                              py::str(dtype), state_dict_of(entries()));
    }

    bool layer;
    Shape normalized_shape;
    std::size_t mid = 0;
    py::object eps_arg;  // as given (None: RMSNorm's machine epsilon)
    double eps = 1e-5;
    bool elementwise_affine, has_bias;
    py::dtype dtype;
    Param weight, bias;
    RecycledOutput recycled_output;  // the last result, reused once the caller drops it
};

struct LayerNormModule : NormModule {
    LayerNormModule(py::handle shape, py::handle eps, bool affine, bool bias, py::handle dtype)
        : NormModule(true, shape, eps, affine, bias, dtype) {}
};
struct RmsNormModule : NormModule {
    RmsNormModule(py::handle shape, py::handle eps, bool affine, py::handle dtype)
        : NormModule(false, shape, eps, affine, false, dtype) {}
};

template <class Module>
void load_norm_state(Module& m, py::handle state, bool strict) {
    load_state(m.entries(), state, strict, m.name());
}

template <class Module, class Class>
void bind_norm_common(Class& cls) {
    cls.def("__call__", &NormModule::call, "x"_a, "out"_a = py::none(), docs::module_call)
        .def("forward", &NormModule::call, "x"_a, "out"_a = py::none(), docs::module_call)
        .def_property_readonly("normalized_shape", &NormModule::normalized_shape_tuple)
        .def_property(
            "eps", [](const Module& m) { return m.eps_arg; },
            [](Module& m, py::handle v) { m.set_eps(v); })
        .def_property_readonly("elementwise_affine", [](const Module& m) { return m.elementwise_affine; })
        .def_property_readonly("dtype", [](const Module& m) { return m.dtype; })
        .def_property(
            "weight", [](const Module& m) { return m.weight.get(); },
            [](Module& m, py::handle v) {
                set_param(m.weight, v, "weight", ValueKind::real, "elementwise_affine=False");
            })
        .def("state_dict", [](Module& m) { return state_dict_of(m.entries()); }, docs::state_dict)
        .def("load_state_dict", &load_norm_state<Module>, "state_dict"_a, "strict"_a = true, docs::load_state_dict)
        .def("__repr__", &NormModule::repr);
}

// ---- BatchNorm ------------------------------------------------------------------------------------

struct BatchNormModule {
    BatchNormModule(py::handle num_features_obj, py::handle eps_obj, py::handle momentum_obj, bool affine_,
                    bool track, py::handle axis_obj, py::handle dtype_obj, bool bias_)
        : affine(affine_), has_bias(affine_ && bias_), track_running_stats(track), dtype(module_dtype(dtype_obj)) {
        num_features = static_cast<std::size_t>(size_arg(num_features_obj, "num_features"));
        set_eps(eps_obj);
        set_momentum(momentum_obj);
        if (!py::isinstance<py::int_>(axis_obj) || py::isinstance<py::bool_>(axis_obj)) {
            throw py::type_error("axis must be an int");
        }
        axis = int_value(axis_obj, "axis");
        const Shape shape{static_cast<py::ssize_t>(num_features)};
        if (affine) {
            weight = Param(dtype, shape, 1.0);
            if (has_bias) bias = Param(dtype, shape, 0.0);
        }
        if (track) {
            running_mean = Param(dtype, shape, 0.0);
            running_var = Param(dtype, shape, 1.0);
            num_batches_tracked = Param(py::dtype::of<std::int64_t>(), Shape{}, 0.0);
        }
        if (is_f32(dtype)) {  // allocated now: eval calls allocate nothing
            cache_aligned_arrays(cache32, num_features);
        } else {
            cache_aligned_arrays(cache64, num_features);
        }
    }

    BatchNormModule clone() const {
        BatchNormModule m(*this);
        m.weight = weight.clone();
        m.bias = bias.clone();
        m.running_mean = running_mean.clone();
        m.running_var = running_var.clone();
        m.num_batches_tracked = num_batches_tracked.clone();
        m.cache_valid = false;
        return m;
    }

    void set_eps(py::handle v) {
        eps = check_eps(number(v, "eps"), is_f32(dtype) ? Dtype::f32 : Dtype::f64);
        cache_valid = false;
    }
    void set_momentum(py::handle v) {
        if (!v.is_none()) {
            const double m = number(v, "momentum");
            if (!(m >= 0.0 && m <= 1.0)) throw py::value_error("momentum must be None or a number in [0, 1], got " + float_repr(m));
            momentum = m;
        }
        momentum_arg = py::reinterpret_borrow<py::object>(v);
    }
    void set_training(bool mode) {
        if (mode && frozen) {
            throw std::runtime_error("this BatchNorm is frozen (inference only): train() is not allowed");
        }
        training = mode;
    }

    std::vector<Entry> entries() {
        return {{"weight", &weight, ValueKind::real},
                {"bias", &bias, ValueKind::real},
                {"running_mean", &running_mean, ValueKind::real},
                {"running_var", &running_var, ValueKind::real},
                {"num_batches_tracked", &num_batches_tracked, ValueKind::count}};
    }

    template <class T>
    std::vector<T>& cache() {
        if constexpr (sizeof(T) == 4) {
            return cache32;
        } else {
            return cache64;
        }
    }

    py::object call(py::handle x_obj, py::handle out) {
        const py::array x = module_input(x_obj, dtype, "BatchNorm");
        const auto ndim = static_cast<long long>(x.ndim());
        if (ndim < 2) {
            throw py::value_error("BatchNorm: x must have at least 2 dimensions (N, C, ...), got shape " +
                                  shape_string(shape_of(x)));
        }
        if (axis < -ndim || axis >= ndim) {
            throw py::value_error("BatchNorm: axis " + std::to_string(axis) + " is out of bounds for an array of " +
                                  std::to_string(ndim) + " dimensions");
        }
        const auto channel_axis = static_cast<std::size_t>(axis < 0 ? axis + ndim : axis);
        if (static_cast<std::size_t>(x.shape(static_cast<py::ssize_t>(channel_axis))) != num_features) {
            throw py::value_error("BatchNorm: expected " + std::to_string(num_features) + " channels on axis " +
                                  std::to_string(axis) + ", got input of shape " + shape_string(shape_of(x)));
        }
        const bool batch_statistics = training || !track_running_stats;
        const bool update = training && track_running_stats;
        const std::size_t count = num_features ? static_cast<std::size_t>(x.size()) / num_features : 0;
        if (batch_statistics && count == 1) {
            throw py::value_error("Expected more than 1 value per channel when training, got input size " +
                                  shape_string(shape_of(x)) +
                                  "; for one sample at a time use streaming statistics (simdnorm.RunningStats)");
        }
        CallLayout call;
        if (channel_axis + 1 != static_cast<std::size_t>(ndim) || !contiguous_rows_call(x, num_features, out, recycled_output, &call)) {
            std::vector<char> axes(static_cast<std::size_t>(ndim), 0);
            axes[channel_axis] = 1;
            call = resolve_call_layout(x, axes, out);
        }
        if (count == 0 || num_features == 0) {  // empty: PyTorch still counts the batch
            finish_call(call);
            if (update) ++*num_batches_tracked.data<std::int64_t>();
            return call.result;
        }
        if (is_f32(dtype)) {
            batch_statistics ? batch_step<float>(call, count, update) : eval_step<float>(call);
        } else {
            batch_statistics ? batch_step<double>(call, count, update) : eval_step<double>(call);
        }
        return call.result;
    }

    // The running statistics are updated in the statistics' tasks (batch_norm_training_forward)
    // unless x or y shares their memory (a read-only view of them, say), then after the call.
    template <class T>
    void batch_step(const CallLayout& call, std::size_t count, bool update) {
        WorkspaceLease ws(num_features);
        double* const mean = ws->moments_for(2 * num_features);
        double* const m2 = mean + num_features;
        if (!update) {
            batch_norm_training_forward<T, T>(call, weight.data<T>(), bias.data<T>(), eps, mean, m2, *ws, nullptr);
            finish_call(call);
            return;
        }
        std::int64_t& batches = *num_batches_tracked.data<std::int64_t>();
        const double f = momentum_arg.is_none() ? 1.0 / double(batches + 1) : momentum;
        const RunningUpdateArgs<T> running = running_update_args<T>(running_mean.data<T>(), running_var.data<T>(),
                                                                    nullptr, nullptr, mean, m2, num_features, count, f);
        const auto touched = [&](const Param& p) {
            const py::array a = p.get();
            return may_share_memory(call.x, a) || may_share_memory(call.y, a) || may_share_memory(call.result, a);
        };
        const bool in_tasks = !touched(running_mean) && !touched(running_var);
        const bool updated = batch_norm_training_forward<T, T>(call, weight.data<T>(), bias.data<T>(), eps, mean, m2,
                                                               *ws, in_tasks ? &running : nullptr);
        finish_call(call);
        if (!updated) simdnorm::update_running_stats(running);
        ++batches;
        cache_valid = false;
    }

    template <class T>
    void eval_step(const CallLayout& call) {
        const ChannelArrays<T> folded = cache_aligned_arrays(cache<T>(), num_features);
        if (!cache_valid || folded.center != cache_center) {  // a copied module carves its copy differently
            check_running_stats(num_features, running_mean.data<T>(), running_var.data<T>());  // as batch_norm's eval
            const RunningStatsSource<T> stats{running_mean.data<T>(), running_var.data<T>(), eps};
            fold_channels<T>(num_features, stats, weight.data<T>(), bias.data<T>(), folded.center, folded.scale,
                             folded.offset);
            cache_valid = true;
            cache_center = folded.center;
        }
        apply_channel_affine<T>(call, folded.center, folded.scale, folded.offset);
        finish_call(call);
    }

    void load(py::handle state, bool strict) {
        load_state(entries(), state, strict, "BatchNorm", "num_batches_tracked");
        cache_valid = false;
    }

    void reset_running_stats() {
        if (!track_running_stats) return;
        const Shape shape{static_cast<py::ssize_t>(num_features)};
        running_mean.assign(Param(dtype, shape, 0.0).copy());
        running_var.assign(Param(dtype, shape, 1.0).copy());
        *num_batches_tracked.data<std::int64_t>() = 0;
        cache_valid = false;
    }
    void reset_parameters() {
        reset_running_stats();
        const Shape shape{static_cast<py::ssize_t>(num_features)};
        if (weight) weight.assign(Param(dtype, shape, 1.0).copy());
        if (bias) bias.assign(Param(dtype, shape, 0.0).copy());
        cache_valid = false;
    }

    std::string repr() const {
        auto b = [](bool v) { return v ? "True" : "False"; };
        std::string s = "BatchNorm(" + std::to_string(num_features) + ", eps=" + float_repr(eps) +
                        ", momentum=" + py::repr(momentum_arg).cast<std::string>() + ", affine=" + b(affine) +
                        ", bias=" + b(has_bias) + ", track_running_stats=" + b(track_running_stats);
        if (axis != 1) s += ", axis=" + std::to_string(axis);
        if (!is_f32(dtype)) s += ", dtype=" + py::str(dtype).cast<std::string>();
        if (frozen) s += ", frozen=True";
        return s + ")";
    }

    py::tuple get_state() {
        return py::make_tuple(1, num_features, eps, momentum_arg, affine, has_bias, track_running_stats, axis,
                              py::str(dtype), training, frozen, state_dict_of(entries()));
    }

    std::size_t num_features = 0;
    double eps = 1e-5;
    double momentum = 0.1;
    py::object momentum_arg;  // None: cumulative moving average
    bool affine, has_bias, track_running_stats;
    long long axis = 1;
    py::dtype dtype;
    Param weight, bias, running_mean, running_var, num_batches_tracked;
    bool training = true, frozen = false;
    bool cache_valid = false;  // eval: cache<T>() holds center, scale, offset (cache_aligned_arrays)
    const void* cache_center = nullptr;  // where they were written
    std::vector<float> cache32;
    std::vector<double> cache64;
    RecycledOutput recycled_output;  // the last channels-last result, reused once the caller drops it
};

BatchNormModule batch_norm_from_running_stats(py::handle stats, py::handle weight, py::handle bias, py::handle eps,
                                              py::handle axis, py::handle dtype) {
    const long long count = int_value(py::int_(stats.attr("count")), "from_running_stats: count");
    if (count <= 0) throw py::value_error("from_running_stats: the statistics have no samples (count == 0)");
    const py::array mean = numpy().attr("asarray")(stats.attr("mean"), "dtype"_a = "float64");
    const py::array var = numpy().attr("asarray")(stats.attr("var"), "dtype"_a = "float64");
    if (mean.ndim() != 1 || shape_of(var) != shape_of(mean)) {
        throw py::value_error("from_running_stats: stats.mean and stats.var must be 1-D arrays of one length");
    }
    py::object eps_value = py::reinterpret_borrow<py::object>(eps);
    if (eps_value.is_none()) eps_value = py::getattr(stats, "eps", py::none());
    if (eps_value.is_none()) eps_value = py::float_(1e-5);
    const bool affine = !weight.is_none() || !bias.is_none();
    BatchNormModule m(py::int_(mean.shape(0)), eps_value, py::float_(0.1), affine, true, axis, dtype, true);
    py::dict state;
    state["running_mean"] = mean;
    state["running_var"] = var;
    if (!weight.is_none()) state["weight"] = weight;
    if (!bias.is_none()) state["bias"] = bias;
    load_state(m.entries(), state, /*strict=*/false, "BatchNorm");
    m.training = false;
    m.frozen = true;
    return m;
}

// ---- The call slots --------------------------------------------------------------------------------

// m(x, out=None) as a vectorcall, skipping pybind11's generic dispatcher (which costs ~0.4 us with a
// keyword argument, more than a 768-wide kernel). It runs the same C++ method as the bound __call__
// (kept for introspection and docs); only the argument parsing differs.
//
// Instances of the exact classes are vectorcall objects: the type grows by one pointer after
// pybind11's instance, which its tp_alloc sets to vectorcall_slot, and tp_call is CPython's
// PyVectorcall_Call (the tuple-and-dict form, converted). Through a tp_call of its own every call
// was first packed into an argument tuple and, with out=, a keyword dict: `ln(x, out=out)` on 1x768
// took 0.76-0.80 us against 0.57-0.61 with out passed by position. Python subclasses take neither:
// CPython gives them its own tp_alloc and a tp_call that calls the bound __call__.
template <class Module>
const py::detail::type_info* module_type_info = nullptr;  // set by install_call_slots

template <class Module>
PyObject* call_module(PyObject* self, PyObject* x, PyObject* out) {
    return guarded([&]() -> PyObject* {
        auto v_h = reinterpret_cast<py::detail::instance*>(self)->get_value_and_holder(module_type_info<Module>, false);
        if (!v_h || !v_h.holder_constructed()) throw py::type_error("the module's __init__ was not called");
        return v_h.template value_ptr<Module>()->call(x, or_none(out)).release().ptr();
    });
}

template <class Module>
PyObject* vectorcall_slot(PyObject* self, PyObject* const* args, std::size_t nargsf, PyObject* kwnames) {
    static constexpr const char* kNames[] = {"x", "out"};
    PyObject* values[2];
    const bool parsed = guarded([&]() -> PyObject* {
        parse_arguments("__call__", args, PyVectorcall_NARGS(nargsf), kwnames, kNames, 2, 2, 1, values);
        return Py_None;  // borrowed: only success is read
    }) != nullptr;
    return parsed ? call_module<Module>(self, values[0], values[1]) : nullptr;
}

template <class Module>
Py_ssize_t vectorcall_offset = 0;  // where instances of the exact class keep vectorcall_slot

template <class Module>
PyObject* alloc_with_vectorcall(PyTypeObject* type, Py_ssize_t items) {
    PyObject* self = PyType_GenericAlloc(type, items);
    if (self) *reinterpret_cast<vectorcallfunc*>(reinterpret_cast<char*>(self) + vectorcall_offset<Module>) = &vectorcall_slot<Module>;
    return self;
}

// After every def (setting an attribute named __call__ on the type would reset the slots) and
// before any instance or subclass exists (the instance size changes).
template <class Module>
void install_call_slots(py::handle cls) {
    auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
    if (type->tp_alloc != PyType_GenericAlloc || type->tp_basicsize % static_cast<Py_ssize_t>(sizeof(void*)) != 0) {
        return;  // not the layout assumed below: calls keep the bound __call__ (slower, same result)
    }
    module_type_info<Module> = py::detail::get_type_info(typeid(Module));
    type->tp_call = PyVectorcall_Call;
    vectorcall_offset<Module> = type->tp_basicsize;
    type->tp_basicsize += static_cast<Py_ssize_t>(sizeof(vectorcallfunc));
    type->tp_vectorcall_offset = vectorcall_offset<Module>;
    type->tp_alloc = &alloc_with_vectorcall<Module>;
    type->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
    PyType_Modified(type);
}

}  // namespace

void register_modules(py::module_& m) {
    auto layer_norm = py::class_<LayerNormModule>(m, "LayerNorm", docs::layer_norm_module);
    layer_norm.def(py::init<py::handle, py::handle, bool, bool, py::handle>(), "normalized_shape"_a, "eps"_a = 1e-5,
                   "elementwise_affine"_a = true, "bias"_a = true, "dtype"_a = py::dtype::of<float>());
    bind_norm_common<LayerNormModule>(layer_norm);
    layer_norm
        .def_property(
            "bias", [](const LayerNormModule& m) { return m.bias.get(); },
            [](LayerNormModule& m, py::handle v) {
                set_param(m.bias, v, "bias", ValueKind::real, "elementwise_affine=False or bias=False");
            })
        .def(py::pickle([](LayerNormModule& m) { return m.get_state(); },
                        [](const py::tuple& t) {
                            if (t.size() != 7 || t[0].cast<int>() != 1) throw py::value_error("invalid LayerNorm state");
                            LayerNormModule m(t[1], t[2], t[3].cast<bool>(), t[4].cast<bool>(), t[5]);
                            load_norm_state(m, t[6], true);
                            return m;
                        }));

    auto rms_norm = py::class_<RmsNormModule>(m, "RMSNorm", docs::rms_norm_module);
    rms_norm.def(py::init<py::handle, py::handle, bool, py::handle>(), "normalized_shape"_a, "eps"_a = 1e-6,
                 "elementwise_affine"_a = true, "dtype"_a = py::dtype::of<float>());
    bind_norm_common<RmsNormModule>(rms_norm);
    rms_norm.def(py::pickle([](RmsNormModule& m) { return m.get_state(); },
                            [](const py::tuple& t) {
                                if (t.size() != 7 || t[0].cast<int>() != 1) throw py::value_error("invalid RMSNorm state");
                                RmsNormModule m(t[1], t[2], t[3].cast<bool>(), t[5]);
                                load_norm_state(m, t[6], true);
                                return m;
                            }));

    using BN = BatchNormModule;
    py::class_<BN>(m, "BatchNorm", docs::batch_norm_module)
        .def(py::init<py::handle, py::handle, py::handle, bool, bool, py::handle, py::handle, bool>(), "num_features"_a,
             "eps"_a = 1e-5, "momentum"_a = 0.1, "affine"_a = true, "track_running_stats"_a = true, "axis"_a = 1,
             "dtype"_a = py::dtype::of<float>(), py::kw_only(), "bias"_a = true)
        .def("__call__", &BN::call, "x"_a, "out"_a = py::none(), docs::module_call)
        .def("forward", &BN::call, "x"_a, "out"_a = py::none(), docs::module_call)
        .def(
            "train",
            [](py::object self, bool mode) {
                self.cast<BN&>().set_training(mode);
                return self;
            },
            "mode"_a = true, "train(mode=True) -> self\n\nTraining mode (batch statistics, running updates). RuntimeError on a frozen module.")
        .def(
            "eval",
            [](py::object self) {
                self.cast<BN&>().set_training(false);
                return self;
            },
            "eval() -> self\n\nEval mode: normalize with the running statistics (folded and cached).")
        .def_property(
            "training", [](const BN& m) { return m.training; }, [](BN& m, bool mode) { m.set_training(mode); })
        .def_property_readonly("frozen", [](const BN& m) { return m.frozen; })
        .def_property_readonly("num_features", [](const BN& m) { return m.num_features; })
        .def_property("eps", [](const BN& m) { return m.eps; }, [](BN& m, py::handle v) { m.set_eps(v); })
        .def_property(
            "momentum", [](const BN& m) { return m.momentum_arg; }, [](BN& m, py::handle v) { m.set_momentum(v); })
        .def_property_readonly("affine", [](const BN& m) { return m.affine; })
        .def_property_readonly("track_running_stats", [](const BN& m) { return m.track_running_stats; })
        .def_property_readonly("axis", [](const BN& m) { return m.axis; })
        .def_property_readonly("dtype", [](const BN& m) { return m.dtype; })
        .def_property(
            "weight", [](const BN& m) { return m.weight.get(); },
            [](BN& m, py::handle v) {
                set_param(m.weight, v, "weight", ValueKind::real, "affine=False");
                m.cache_valid = false;
            })
        .def_property(
            "bias", [](const BN& m) { return m.bias.get(); },
            [](BN& m, py::handle v) {
                set_param(m.bias, v, "bias", ValueKind::real, "affine=False or bias=False");
                m.cache_valid = false;
            })
        .def_property(
            "running_mean", [](const BN& m) { return m.running_mean.get(); },
            [](BN& m, py::handle v) {
                set_param(m.running_mean, v, "running_mean", ValueKind::real, "track_running_stats=False");
                m.cache_valid = false;
            })
        .def_property(
            "running_var", [](const BN& m) { return m.running_var.get(); },
            [](BN& m, py::handle v) {
                set_param(m.running_var, v, "running_var", ValueKind::real, "track_running_stats=False");
                m.cache_valid = false;
            })
        .def_property(
            "num_batches_tracked", [](const BN& m) { return m.num_batches_tracked.get(); },
            [](BN& m, py::handle v) {
                set_param(m.num_batches_tracked, v, "num_batches_tracked", ValueKind::count, "track_running_stats=False");
            })
        .def("state_dict", [](BN& m) { return state_dict_of(m.entries()); }, docs::state_dict)
        .def("load_state_dict", &BN::load, "state_dict"_a, "strict"_a = true, docs::load_state_dict)
        .def("reset_running_stats", &BN::reset_running_stats,
             "reset_running_stats()\n\nrunning_mean = 0, running_var = 1, num_batches_tracked = 0.")
        .def("reset_parameters", &BN::reset_parameters,
             "reset_parameters()\n\nreset_running_stats(), then weight = 1 and bias = 0.")
        .def(
            "as_frozen",
            [](const BN& m) {
                if (!m.track_running_stats) {
                    throw py::value_error("as_frozen: this BatchNorm has no running statistics (track_running_stats=False)");
                }
                BN frozen = m.clone();
                frozen.training = false;
                frozen.frozen = true;
                return frozen;
            },
            docs::as_frozen)
        .def_static("from_running_stats", &batch_norm_from_running_stats, "stats"_a, "weight"_a = py::none(),
                    "bias"_a = py::none(), "eps"_a = py::none(), "axis"_a = 1, "dtype"_a = py::dtype::of<float>(),
                    docs::from_running_stats)
        .def("__repr__", &BN::repr)
        .def(py::pickle([](BN& m) { return m.get_state(); },
                        [](const py::tuple& t) {
                            if (t.size() != 12 || t[0].cast<int>() != 1) throw py::value_error("invalid BatchNorm state");
                            BN m(t[1], t[2], t[3], t[4].cast<bool>(), t[6].cast<bool>(), t[7], t[8], t[5].cast<bool>());
                            m.load(t[11], true);
                            m.training = t[9].cast<bool>();
                            m.frozen = t[10].cast<bool>();
                            return m;
                        }));
    install_call_slots<LayerNormModule>(layer_norm);
    install_call_slots<RmsNormModule>(rms_norm);
    install_call_slots<BN>(m.attr("BatchNorm"));
}

}  // namespace simdnorm::bindings
