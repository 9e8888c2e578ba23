// simdnorm.RunningStats: streaming per-feature statistics, bound directly (per-sample cost is the API).
//
// The hot methods take py::handle and read NumPy's array struct themselves: a contiguous float32 /
// float64 sample costs a few pointer checks, one lock and the update loop. Anything unusual (array-likes,
// strided or misaligned inputs, overlapping out) goes through one slow path that copies once.
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>

#include "array_args.hpp"
#include "output_buffers.hpp"
#include "raw_call.hpp"
#include "recycled_output.hpp"
#include "simdnorm/running_stats.hpp"
#include "streaming.hpp"
#include "streaming_docs.hpp"

namespace simdnorm::bindings {
namespace {

using namespace pybind11::literals;
using simdnorm::NonFinite;
using simdnorm::NonFiniteHit;

struct PyRunningStats {
    PyRunningStats(std::size_t num_features, double momentum, double eps, NonFinite policy)
        : core(num_features, momentum, eps, policy) {}
    simdnorm::RunningStats core;
    std::mutex mutex;
    RecycledOutput recycled_output;  // the last normalize result, reused once the caller drops it (GIL held)
};

// Takes the object's lock. Never blocks while holding the GIL: if the lock is busy (a large batch
// running without the GIL), the GIL is released while waiting.
class Locked {
public:
    explicit Locked(std::mutex& m) : lock_(m, std::try_to_lock) {
        if (!lock_.owns_lock()) {
            py::gil_scoped_release nogil;
            lock_.lock();
        }
    }

private:
    std::unique_lock<std::mutex> lock_;
};

// ---- arrays -------------------------------------------------------------------------------------

struct View {
    char* data = nullptr;
    int ndim = 0;
    int type_num = 0;
    py::ssize_t rows = 0;             // 1 for a single sample
    std::ptrdiff_t row_stride = 0;    // elements
    std::size_t itemsize = 0;
};

bool is_f32(int type_num) { return type_num == py::detail::npy_api::NPY_FLOAT_; }

// The descriptor is float32 / float64 in native byte order.
bool fast_dtype(PyObject* descr, int* type_num) {
    const auto* d = py::detail::array_descriptor_proxy(descr);
    if (d->type_num != py::detail::npy_api::NPY_FLOAT_ && d->type_num != py::detail::npy_api::NPY_DOUBLE_) return false;
    if (d->byteorder == '>') return false;  // little-endian hosts only reach the fast path ('=' / '<')
    *type_num = d->type_num;
    return true;
}

std::string method_name(const char* method) { return std::string("RunningStats.") + method; }

[[noreturn]] void bad_shape(const char* method, int ndim, const py::ssize_t* shape, std::size_t features) {
    std::ostringstream s;
    s << method_name(method) << ": x must be one sample (" << features << ",) or a batch (B, " << features
      << ") of float32 or float64, got shape (";
    for (int i = 0; i < ndim; ++i) s << (i ? ", " : "") << shape[i];
    if (ndim == 1) s << ",";
    s << ")";
    if (ndim == 1 || ndim == 2) s << ": " << shape[ndim - 1] << " features, expected " << features;
    throw py::value_error(s.str());
}

// x as a readable (rows, F) view with contiguous, aligned features; `keep` owns any copy made.
View input_view(py::handle x, std::size_t features, const char* method, py::object* keep) {
    auto& api = py::detail::npy_api::get();
    PyObject* obj = x.ptr();
    int type_num = 0;
    if (!api.PyArray_Check_(obj) || !fast_dtype(py::detail::array_proxy(obj)->descr, &type_num)) {
        py::array a = input_array(x, "x");  // converts array-likes; TypeError for other dtypes
        type_num = a.dtype().num();
        if (type_num != py::detail::npy_api::NPY_FLOAT_ && type_num != py::detail::npy_api::NPY_DOUBLE_) {
            throw py::type_error(method_name(method) + ": x must have dtype float32 or float64, got " +
                                 dtype_name(a));
        }
        *keep = a;
        obj = a.ptr();
    }
    const auto* p = py::detail::array_proxy(obj);
    View v;
    v.ndim = p->nd;
    v.type_num = type_num;
    v.itemsize = is_f32(type_num) ? 4 : 8;
    if ((v.ndim != 1 && v.ndim != 2) || static_cast<std::size_t>(p->dimensions[v.ndim - 1]) != features) {
        bad_shape(method, v.ndim, p->dimensions, features);
    }
    const auto item = static_cast<py::ssize_t>(v.itemsize);
    const bool aligned = (p->flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
    const bool unit_stride = features == 1 || p->strides[v.ndim - 1] == item;
    v.rows = v.ndim == 2 ? p->dimensions[0] : 1;
    if (!aligned || !unit_stride || (v.ndim == 2 && v.rows > 1 && p->strides[0] % item != 0)) {
        // One deliberate copy for strided / misaligned input.
        py::array a = py::reinterpret_borrow<py::array>(obj);
        py::array copy(a.dtype(), std::vector<py::ssize_t>(p->dimensions, p->dimensions + v.ndim));
        copy_into(copy, a);
        *keep = copy;
        const auto* c = py::detail::array_proxy(copy.ptr());
        v.data = c->data;
        v.row_stride = v.ndim == 2 ? static_cast<std::ptrdiff_t>(features) : 0;
        return v;
    }
    v.data = p->data;
    v.row_stride = v.ndim == 2 ? static_cast<std::ptrdiff_t>(p->strides[0] / item) : 0;
    return v;
}

void byte_span(const View& v, std::size_t features, std::intptr_t* lo, std::intptr_t* hi) {
    const auto begin = reinterpret_cast<std::intptr_t>(v.data);
    const std::intptr_t row_extent =
        static_cast<std::intptr_t>(v.rows > 0 ? v.rows - 1 : 0) * v.row_stride * static_cast<std::intptr_t>(v.itemsize);
    *lo = begin + (row_extent < 0 ? row_extent : 0);
    *hi = begin + (row_extent > 0 ? row_extent : 0) + static_cast<std::intptr_t>(features * v.itemsize);
}

// Destination of a normalization. `result` is what the call returns; `target` is written by the
// kernel; when target is a temporary (out not writable in place), `copy_back` is set.
struct Output {
    View view;
    py::object result;
    py::array copy_back_to = null_array();
    py::array temp = null_array();
};

Output output_view(py::handle out, py::handle x_obj, const View& x, std::size_t features, const char* method,
                   RecycledOutput& recycled) {
    auto& api = py::detail::npy_api::get();
    Output o;
    if (out.is_none()) {
        const py::dtype dt = is_f32(x.type_num) ? py::dtype::of<float>() : py::dtype::of<double>();
        const py::ssize_t shape[2] = {static_cast<py::ssize_t>(x.rows), static_cast<py::ssize_t>(features)};
        py::array fresh = recycled.take(dt, x.ndim, x.ndim == 2 ? shape : shape + 1,
                                        static_cast<std::size_t>(x.rows) * features * x.itemsize, x.data);
        o.view = x;
        o.view.data = py::detail::array_proxy(fresh.ptr())->data;
        o.view.row_stride = x.ndim == 2 ? static_cast<std::ptrdiff_t>(features) : 0;
        o.result = std::move(fresh);
        return o;
    }
    (void)x_obj;
    PyObject* obj = out.ptr();
    if (!api.PyArray_Check_(obj)) throw py::type_error(method_name(method) + ": out must be a NumPy array or None");
    const auto* p = py::detail::array_proxy(obj);
    int type_num = 0;
    if (!fast_dtype(p->descr, &type_num) || type_num != x.type_num) {
        throw py::type_error(method_name(method) + ": out must have the dtype of x (" +
                             (is_f32(x.type_num) ? "float32" : "float64") + "), got " +
                             dtype_name(py::reinterpret_borrow<py::array>(obj)));
    }
    const bool same_shape = p->nd == x.ndim && p->dimensions[p->nd - 1] == static_cast<py::ssize_t>(features) &&
                            (x.ndim == 1 || p->dimensions[0] == x.rows);
    if (!same_shape) {
        throw py::value_error(method_name(method) + ": out must have the shape of x, got " +
                              std::string(py::str(py::reinterpret_borrow<py::array>(obj).attr("shape"))));
    }
    if (!(p->flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_)) {
        throw py::value_error(method_name(method) + ": out is read-only");
    }
    o.result = py::reinterpret_borrow<py::object>(out);
    const auto item = static_cast<py::ssize_t>(x.itemsize);
    const bool aligned = (p->flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
    const bool unit_stride = features == 1 || p->strides[p->nd - 1] == item;
    if (aligned && unit_stride && (x.ndim == 1 || x.rows <= 1 || p->strides[0] % item == 0)) {
        o.view = x;
        o.view.data = p->data;
        o.view.row_stride = x.ndim == 2 ? static_cast<std::ptrdiff_t>(p->strides[0] / item) : 0;
        return o;
    }
    // Strided / misaligned out: write a contiguous temporary, copy it back once.
    py::array a = py::reinterpret_borrow<py::array>(obj);
    o.temp = new_output(a.dtype(), p->nd, p->dimensions, static_cast<std::size_t>(x.rows) * features * x.itemsize);
    o.copy_back_to = a;
    o.view = x;
    o.view.data = py::detail::array_proxy(o.temp.ptr())->data;
    o.view.row_stride = x.ndim == 2 ? static_cast<std::ptrdiff_t>(features) : 0;
    return o;
}

// If out overlaps x other than exactly (same rows, same places), read x from a copy.
void separate_overlap(View* x, const View& y, std::size_t features, py::object* keep) {
    if (x->rows == 0 || (x->data == y.data && (x->rows <= 1 || x->row_stride == y.row_stride))) return;
    std::intptr_t xl, xh, yl, yh;
    byte_span(*x, features, &xl, &xh);
    byte_span(y, features, &yl, &yh);
    if (!(xl < yh && yl < xh)) return;
    const py::dtype dt = is_f32(x->type_num) ? py::dtype::of<float>() : py::dtype::of<double>();
    py::array copy(dt, std::vector<py::ssize_t>{x->rows, static_cast<py::ssize_t>(features)});
    char* dst = py::detail::array_proxy(copy.ptr())->data;
    for (py::ssize_t r = 0; r < x->rows; ++r) {
        std::memcpy(dst + r * features * x->itemsize,
                    x->data + r * x->row_stride * static_cast<std::ptrdiff_t>(x->itemsize), features * x->itemsize);
    }
    *keep = copy;
    x->data = dst;
    x->row_stride = static_cast<std::ptrdiff_t>(features);
}

void finish_output(const Output& o) {
    if (o.copy_back_to) copy_into(o.copy_back_to, o.temp);
}

std::string format_double(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    std::ostringstream s;
    s << v;
    return s.str();
}

[[noreturn]] void raise_nonfinite(const char* method, const View& x, const NonFiniteHit& hit) {
    std::ostringstream s;
    s << method_name(method) << ": x[";
    if (x.ndim == 2) s << hit.row << ", ";
    s << hit.feature << "] is " << format_double(hit.value)
      << "; non-finite values are rejected and nothing was updated (nonfinite='raise'). Construct with "
         "nonfinite='ignore' to skip such samples or nonfinite='propagate' to let them into the statistics";
    throw py::value_error(s.str());
}

[[noreturn]] void raise_empty(const char* method) {
    throw py::value_error(method_name(method) +
                          ": no statistics yet (count == 0); call update() with at least one sample first");
}

bool large(const View& x, std::size_t features) {
    return static_cast<std::size_t>(x.rows) * features >= kReleaseGilElements;
}

// Runs fn(core) under the object's lock: without the GIL for large inputs.
template <class Fn>
void with_core(PyRunningStats& self, bool release_gil, Fn&& fn) {
    if (release_gil) {
        py::gil_scoped_release nogil;
        std::lock_guard<std::mutex> lock(self.mutex);
        fn(self.core);
    } else {
        Locked lock(self.mutex);
        fn(self.core);
    }
}

// ---- methods ------------------------------------------------------------------------------------

void update(PyRunningStats& self, py::handle x_obj) {
    const std::size_t features = self.core.num_features();
    py::object keep;
    const View x = input_view(x_obj, features, "update", &keep);
    NonFiniteHit hit;
    with_core(self, large(x, features), [&](simdnorm::RunningStats& core) {
        if (is_f32(x.type_num)) core.update(reinterpret_cast<const float*>(x.data), x.rows, x.row_stride, &hit);
        else core.update(reinterpret_cast<const double*>(x.data), x.rows, x.row_stride, &hit);
    });
    if (hit.found) raise_nonfinite("update", x, hit);
}

double eps_argument(py::handle eps) {
    if (eps.is_none()) return 0.0;
    if (py::isinstance<py::bool_>(eps) || !(py::isinstance<py::float_>(eps) || py::isinstance<py::int_>(eps))) {
        throw py::type_error("RunningStats.normalize: eps must be a number or None, got " +
                             std::string(py::str(py::type::of(eps).attr("__name__"))));
    }
    return check_eps(py::float_(py::reinterpret_borrow<py::object>(eps)).cast<double>());
}

py::object normalize(PyRunningStats& self, py::handle x_obj, py::handle out, py::handle eps_obj) {
    const std::size_t features = self.core.num_features();
    const double eps = eps_argument(eps_obj);
    py::object keep;
    View x = input_view(x_obj, features, "normalize", &keep);
    Output o = output_view(out, x_obj, x, features, "normalize", self.recycled_output);
    separate_overlap(&x, o.view, features, &keep);
    bool empty = false;
    with_core(self, large(x, features), [&](simdnorm::RunningStats& core) {
        if (core.count() == 0) {
            empty = true;
            return;
        }
        if (is_f32(x.type_num)) {
            core.normalize(reinterpret_cast<const float*>(x.data), reinterpret_cast<float*>(o.view.data), x.rows,
                           x.row_stride, o.view.row_stride, eps);
        } else {
            core.normalize(reinterpret_cast<const double*>(x.data), reinterpret_cast<double*>(o.view.data), x.rows,
                           x.row_stride, o.view.row_stride, eps);
        }
    });
    if (empty) raise_empty("normalize");
    finish_output(o);
    return o.result;
}

py::object update_normalize(PyRunningStats& self, py::handle x_obj, py::handle out) {
    const std::size_t features = self.core.num_features();
    py::object keep;
    View x = input_view(x_obj, features, "update_normalize", &keep);
    Output o = output_view(out, x_obj, x, features, "update_normalize", self.recycled_output);
    separate_overlap(&x, o.view, features, &keep);
    NonFiniteHit hit;
    bool empty = false;
    with_core(self, large(x, features), [&](simdnorm::RunningStats& core) {
        bool done;
        if (is_f32(x.type_num)) {
            done = core.update_normalize(reinterpret_cast<const float*>(x.data), reinterpret_cast<float*>(o.view.data),
                                         x.rows, x.row_stride, o.view.row_stride, &hit);
        } else {
            done = core.update_normalize(reinterpret_cast<const double*>(x.data),
                                         reinterpret_cast<double*>(o.view.data), x.rows, x.row_stride,
                                         o.view.row_stride, &hit);
        }
        empty = !done && !hit.found;
    });
    if (hit.found) raise_nonfinite("update_normalize", x, hit);
    if (empty) raise_empty("update_normalize");
    finish_output(o);
    return o.result;
}

// ---- state --------------------------------------------------------------------------------------

struct Snapshot {
    std::size_t num_features;
    std::int64_t count;
    double momentum, eps;
    NonFinite policy;
    bool frozen;
    std::vector<double> mean, second;
};

Snapshot snapshot(PyRunningStats& self) {
    Locked lock(self.mutex);
    const auto& c = self.core;
    const std::size_t n = c.num_features();
    return Snapshot{n,
                    c.count(),
                    c.momentum(),
                    c.eps(),
                    c.policy(),
                    c.frozen(),
                    std::vector<double>(c.mean(), c.mean() + n),
                    std::vector<double>(c.second(), c.second() + n)};
}

py::array_t<double> to_array(const std::vector<double>& v) {
    py::array_t<double> a(static_cast<py::ssize_t>(v.size()));
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(double));
    return a;
}

enum class Stat { mean, var, std, var_unbiased };

py::array_t<double> statistic(PyRunningStats& self, Stat which) {
    const Snapshot s = snapshot(self);
    const bool exact = s.momentum <= 0.0;
    if (which == Stat::var_unbiased && !exact) {
        throw py::value_error(
            "RunningStats.var_unbiased is defined only in exact mode (momentum=None); an exponentially weighted "
            "variance has no unbiased form. Use .var");
    }
    std::vector<double> v(s.num_features, std::numeric_limits<double>::quiet_NaN());
    if (s.count > 0) {
        const double n = static_cast<double>(s.count);
        for (std::size_t j = 0; j < s.num_features; ++j) {
            const double var = exact ? s.second[j] / n : s.second[j];
            switch (which) {
                case Stat::mean: v[j] = s.mean[j]; break;
                case Stat::var: v[j] = var; break;
                case Stat::std: v[j] = std::sqrt(var); break;
                case Stat::var_unbiased: v[j] = s.count > 1 ? s.second[j] / (n - 1.0) : v[j]; break;
            }
        }
    }
    return to_array(v);
}

py::object momentum_object(double momentum) {
    return momentum > 0.0 ? py::object(py::float_(momentum)) : py::object(py::none());
}

py::dict state_dict(PyRunningStats& self) {
    const Snapshot s = snapshot(self);
    py::dict d;
    d["num_features"] = py::int_(s.num_features);
    d["momentum"] = momentum_object(s.momentum);
    d["eps"] = py::float_(s.eps);
    d["nonfinite"] = py::str(simdnorm::nonfinite_name(s.policy));
    d["frozen"] = py::bool_(s.frozen);
    d["count"] = py::int_(s.count);
    d["mean"] = to_array(s.mean);
    d[s.momentum > 0.0 ? "var" : "m2"] = to_array(s.second);
    return d;
}

double parse_momentum(py::handle m) {
    if (m.is_none()) return 0.0;
    if (py::isinstance<py::bool_>(m) || !(py::isinstance<py::float_>(m) || py::isinstance<py::int_>(m))) {
        throw py::type_error("RunningStats: momentum must be a float in (0, 1] or None, got " +
                             std::string(py::str(py::type::of(m).attr("__name__"))));
    }
    const double a = m.cast<double>();
    if (!(a > 0.0 && a <= 1.0)) {
        throw py::value_error("RunningStats: momentum must be in (0, 1] (the weight of the new sample) or None, got " +
                              format_double(a));
    }
    return a;
}

double parse_eps(py::handle e) {
    if (py::isinstance<py::bool_>(e) || !(py::isinstance<py::float_>(e) || py::isinstance<py::int_>(e))) {
        throw py::type_error("RunningStats: eps must be a number, got " +
                             std::string(py::str(py::type::of(e).attr("__name__"))));
    }
    return check_eps(py::float_(py::reinterpret_borrow<py::object>(e)).cast<double>());
}

NonFinite parse_policy(py::handle p) {
    NonFinite policy;
    if (!py::isinstance<py::str>(p) || !simdnorm::parse_nonfinite(p.cast<std::string>(), &policy)) {
        throw py::value_error("RunningStats: nonfinite must be 'raise', 'ignore' or 'propagate', got " +
                              std::string(py::repr(p)));
    }
    return policy;
}

std::size_t parse_num_features(py::handle n) {
    if (py::isinstance<py::bool_>(n) || !py::isinstance<py::int_>(n)) {
        throw py::type_error("RunningStats: num_features must be an int, got " +
                             std::string(py::str(py::type::of(n).attr("__name__"))));
    }
    const long long v = int_value(n, "RunningStats: num_features");
    if (v < 1) throw py::value_error("RunningStats: num_features must be >= 1, got " + std::to_string(v));
    return static_cast<std::size_t>(v);
}

std::vector<double> state_vector(py::handle obj, const char* key, std::size_t features) {
    auto a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(obj);
    if (!a) {
        PyErr_Clear();
        throw py::type_error(std::string("RunningStats.load_state_dict: '") + key +
                             "' must be a float64 array-like, got " + std::string(py::str(py::type::of(obj).attr("__name__"))));
    }
    const char kind = py::isinstance<py::array>(obj) ? py::reinterpret_borrow<py::array>(obj).dtype().kind() : 'f';
    if (kind != 'f' && kind != 'i' && kind != 'u') {
        throw py::type_error(std::string("RunningStats.load_state_dict: '") + key + "' must be a real array");
    }
    if (a.ndim() != 1 || static_cast<std::size_t>(a.shape(0)) != features) {
        throw py::value_error(std::string("RunningStats.load_state_dict: '") + key + "' must have shape (" +
                              std::to_string(features) + ",), got " + std::string(py::str(a.attr("shape"))));
    }
    return std::vector<double>(a.data(), a.data() + features);
}

void load_state_dict(PyRunningStats& self, py::handle state_obj) {
    if (!py::isinstance<py::dict>(state_obj)) {
        throw py::type_error("RunningStats.load_state_dict: state must be a dict, got " +
                             std::string(py::str(py::type::of(state_obj).attr("__name__"))));
    }
    const py::dict state = py::reinterpret_borrow<py::dict>(state_obj);
    const std::size_t features = self.core.num_features();  // immutable
    Snapshot current = snapshot(self);
    double momentum = current.momentum, eps = current.eps;
    NonFinite policy = current.policy;
    bool frozen = current.frozen;
    for (auto item : state) {
        if (!py::isinstance<py::str>(item.first)) {
            throw py::type_error("RunningStats.load_state_dict: keys must be strings, got " + std::string(py::repr(item.first)));
        }
        const std::string key = item.first.cast<std::string>();
        static const char* known[] = {"num_features", "momentum", "eps", "nonfinite", "frozen", "count", "mean", "m2", "var"};
        bool ok = false;
        for (const char* k : known) ok = ok || key == k;
        if (!ok) throw py::value_error("RunningStats.load_state_dict: unexpected key '" + key + "'");
    }
    if (state.contains("num_features")) {
        const std::size_t n = parse_num_features(state["num_features"]);
        if (n != features) {
            throw py::value_error("RunningStats.load_state_dict: state has num_features=" + std::to_string(n) +
                                  ", this object has " + std::to_string(features));
        }
    }
    if (state.contains("momentum")) momentum = parse_momentum(state["momentum"]);
    if (state.contains("eps")) eps = parse_eps(state["eps"]);
    if (state.contains("nonfinite")) policy = parse_policy(state["nonfinite"]);
    if (state.contains("frozen")) {
        py::object f = state["frozen"];
        if (!py::isinstance<py::bool_>(f)) throw py::type_error("RunningStats.load_state_dict: 'frozen' must be a bool");
        frozen = f.cast<bool>();
    }
    const bool exact = momentum <= 0.0;
    const char* second_key = exact ? "m2" : "var";
    const char* other_key = exact ? "var" : "m2";
    if (state.contains(other_key)) {
        throw py::value_error(std::string("RunningStats.load_state_dict: key '") + other_key + "' belongs to " +
                              (exact ? "momentum" : "exact") + " mode; this state is in " +
                              (exact ? "exact mode (expects 'm2')" : "momentum mode (expects 'var')"));
    }
    for (const char* key : {"count", "mean", second_key}) {
        if (!state.contains(key)) {
            throw py::value_error(std::string("RunningStats.load_state_dict: missing key '") + key + "'");
        }
    }
    py::object count_obj = state["count"];
    if (py::isinstance<py::bool_>(count_obj) || !(py::isinstance<py::int_>(count_obj) ||
                                                  (py::hasattr(count_obj, "__index__") && !py::isinstance<py::float_>(count_obj)))) {
        throw py::type_error("RunningStats.load_state_dict: 'count' must be an int, got " +
                             std::string(py::str(py::type::of(count_obj).attr("__name__"))));
    }
    const long long count = int_value(py::int_(count_obj), "RunningStats.load_state_dict: count");
    const std::vector<double> mean = state_vector(state["mean"], "mean", features);
    const std::vector<double> second = state_vector(state[second_key], second_key, features);
    const std::string problem =
        simdnorm::RunningStats::check_state(features, exact, policy, count, mean.data(), second.data());
    if (!problem.empty()) throw py::value_error("RunningStats.load_state_dict: " + problem);
    Locked lock(self.mutex);
    self.core.set_config(momentum, eps, policy);
    self.core.set_state(count, mean.data(), second.data());
    self.core.set_frozen(frozen);
}

void merge(PyRunningStats& self, py::handle other_obj) {
    if (!is_running_stats(other_obj)) {
        throw py::type_error("RunningStats.merge: other must be a RunningStats, got " +
                             std::string(py::str(py::type::of(other_obj).attr("__name__"))));
    }
    PyRunningStats& other = other_obj.cast<PyRunningStats&>();
    const Snapshot o = snapshot(other);  // copied first: merging with itself or in two orders cannot deadlock
    Locked lock(self.mutex);
    auto& core = self.core;
    if (!core.exact() || o.momentum > 0.0) {
        throw py::value_error(
            "RunningStats.merge: only exact statistics (momentum=None) can be merged; an exponentially weighted "
            "state has no exact combination");
    }
    if (o.num_features != core.num_features()) {
        throw py::value_error("RunningStats.merge: other has " + std::to_string(o.num_features) +
                              " features, this object has " + std::to_string(core.num_features()));
    }
    if (core.frozen()) throw py::value_error("RunningStats.merge: this object is frozen; unfreeze() it first");
    if (o.count > std::numeric_limits<std::int64_t>::max() - core.count()) {
        throw py::value_error("RunningStats.merge: the combined count would exceed 2**63 - 1 (" +
                              std::to_string(core.count()) + " + " + std::to_string(o.count) + ")");
    }
    core.merge(o.count, o.mean.data(), o.second.data());
}

std::unique_ptr<PyRunningStats> construct(py::handle num_features, py::handle momentum, py::handle eps,
                                          py::handle nonfinite) {
    return std::make_unique<PyRunningStats>(parse_num_features(num_features), parse_momentum(momentum),
                                            parse_eps(eps), parse_policy(nonfinite));
}

std::string repr(PyRunningStats& self) {
    const Snapshot s = snapshot(self);
    std::ostringstream r;
    r << "RunningStats(num_features=" << s.num_features << ", momentum="
      << (s.momentum > 0.0 ? format_double(s.momentum) : std::string("None")) << ", eps=" << format_double(s.eps)
      << ", nonfinite='" << simdnorm::nonfinite_name(s.policy) << "', count=" << s.count
      << (s.frozen ? ", frozen" : "") << ")";
    return r.str();
}

// ---- vectorcall entry points of the hot methods ------------------------------------------------
// update / normalize / update_normalize are METH_FASTCALL method descriptors on the pybind11 class:
// pybind11's generic dispatcher (overload resolution, kwargs dict) costs more than a 256-wide update.
// Same code behind them; only the argument unpacking is done here.

PyRunningStats* self_of(PyObject* self) {
    auto* inst = reinterpret_cast<py::detail::instance*>(self);
    auto* p = inst->get_value_and_holder().value_ptr<PyRunningStats>();
    if (!p) throw py::type_error("RunningStats: object is not initialized (its __init__ was not called)");
    return p;
}



PyObject* fast_update(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    return guarded([&]() -> PyObject* {
        static const char* const names[] = {"x"};
        PyObject* v[1];
        parse_arguments("RunningStats.update", args, nargs, kwnames, names, 1, 1, 1, v);
        update(*self_of(self), v[0]);
        Py_RETURN_NONE;
    });
}

PyObject* fast_normalize(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    return guarded([&]() -> PyObject* {
        static const char* const names[] = {"x", "out", "eps"};
        PyObject* v[3];
        parse_arguments("RunningStats.normalize", args, nargs, kwnames, names, 3, 2, 1, v);
        return normalize(*self_of(self), v[0], or_none(v[1]), or_none(v[2])).release().ptr();
    });
}

PyObject* fast_update_normalize(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    return guarded([&]() -> PyObject* {
        static const char* const names[] = {"x", "out"};
        PyObject* v[2];
        parse_arguments("RunningStats.update_normalize", args, nargs, kwnames, names, 2, 2, 1, v);
        return update_normalize(*self_of(self), v[0], or_none(v[1])).release().ptr();
    });
}

PyObject* fast_noop(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
    return guarded([&]() -> PyObject* {
        static const char* const names[] = {"x", "out"};
        PyObject* v[2];
        parse_arguments("RunningStats._noop_fastcall", args, nargs, kwnames, names, 2, 2, 1, v);
        (void)self_of(self);
        Py_RETURN_NONE;
    });
}



}  // namespace

bool is_running_stats(py::handle obj) { return py::isinstance<PyRunningStats>(obj); }

RunningStatsSnapshot running_stats_snapshot(py::handle obj) {
    if (!is_running_stats(obj)) {
        throw py::type_error("expected a simdnorm.RunningStats, got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    }
    PyRunningStats& self = obj.cast<PyRunningStats&>();
    const Snapshot s = snapshot(self);
    RunningStatsSnapshot r;
    r.num_features = s.num_features;
    r.count = s.count;
    r.momentum = s.momentum;
    r.eps = s.eps;
    r.frozen = s.frozen;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const bool exact = s.momentum <= 0.0;
    r.mean.assign(s.num_features, nan);
    r.var.assign(s.num_features, nan);
    if (exact) r.var_unbiased.assign(s.num_features, nan);
    if (s.count > 0) {
        const double n = static_cast<double>(s.count);
        for (std::size_t j = 0; j < s.num_features; ++j) {
            r.mean[j] = s.mean[j];
            r.var[j] = exact ? s.second[j] / n : s.second[j];
            if (exact && s.count > 1) r.var_unbiased[j] = s.second[j] / (n - 1.0);
        }
    }
    return r;
}

void register_streaming(py::module_& m) {
    py::class_<PyRunningStats> cls(m, "RunningStats", docs::running_stats);
    cls.def(py::init(&construct), "num_features"_a, py::kw_only(), "momentum"_a = py::none(), "eps"_a = 1e-5,
            "nonfinite"_a = "raise");
    add_fast_method(cls.ptr(), "update", &fast_update, "update($self, x)", docs::update);
    add_fast_method(cls.ptr(), "normalize", &fast_normalize, "normalize($self, x, out=None, *, eps=None)",
                    docs::normalize);
    add_fast_method(cls.ptr(), "update_normalize", &fast_update_normalize, "update_normalize($self, x, out=None)",
                    docs::update_normalize);
    cls.def("merge", &merge, "other"_a, docs::merge);
    cls.def(
        "reset",
        [](PyRunningStats& self) {
            Locked lock(self.mutex);
            self.core.reset();
        },
        "reset()\n\nForgets every sample (count 0); the configuration and the frozen flag are kept.");
    cls.def(
        "freeze",
        [](PyRunningStats& self) {
            Locked lock(self.mutex);
            self.core.set_frozen(true);
        },
        "freeze()\n\nStops every update path: update() does nothing, update_normalize() only normalizes, merge() "
        "raises. normalize(), reset() and load_state_dict() still work.");
    cls.def(
        "unfreeze",
        [](PyRunningStats& self) {
            Locked lock(self.mutex);
            self.core.set_frozen(false);
        },
        "unfreeze()\n\nResumes updating.");
    cls.def_property_readonly(
        "frozen",
        [](PyRunningStats& self) {
            Locked lock(self.mutex);
            return self.core.frozen();
        },
        "True between freeze() and unfreeze().");
    cls.def_property_readonly(
        "count",
        [](PyRunningStats& self) {
            Locked lock(self.mutex);
            return self.core.count();
        },
        "Samples seen (int).");
    cls.def_property_readonly(
        "mean", [](PyRunningStats& self) { return statistic(self, Stat::mean); },
        "Running mean, float64 (F,) copy (NaN while count == 0).");
    cls.def_property_readonly(
        "var", [](PyRunningStats& self) { return statistic(self, Stat::var); },
        "Population variance (ddof=0), float64 (F,) copy (NaN while count == 0).");
    cls.def_property_readonly(
        "std", [](PyRunningStats& self) { return statistic(self, Stat::std); },
        "sqrt(var), float64 (F,) copy.");
    cls.def_property_readonly(
        "var_unbiased", [](PyRunningStats& self) { return statistic(self, Stat::var_unbiased); },
        "Sample variance (ddof=1), float64 (F,) copy; NaN while count < 2. Exact mode only: ValueError with "
        "momentum.");
    cls.def_property_readonly(
        "num_features", [](PyRunningStats& self) { return self.core.num_features(); }, "F.");
    cls.def_property_readonly(
        "momentum",
        [](PyRunningStats& self) {
            Locked lock(self.mutex);
            return momentum_object(self.core.momentum());
        },
        "None (exact mode) or the weight of a new sample.");
    cls.def_property_readonly(
        "eps",
        [](PyRunningStats& self) {
            Locked lock(self.mutex);
            return self.core.eps();
        },
        "Default eps of normalize().");
    cls.def_property_readonly(
        "nonfinite",
        [](PyRunningStats& self) {
            Locked lock(self.mutex);
            return std::string(simdnorm::nonfinite_name(self.core.policy()));
        },
        "'raise', 'ignore' or 'propagate'.");
    cls.def("state_dict", &state_dict, docs::state_dict);
    cls.def("load_state_dict", &load_state_dict, "state"_a, docs::load_state_dict);
    cls.def("__repr__", &repr);
    cls.def(py::pickle([](PyRunningStats& self) { return state_dict(self); },
                       [](py::dict state) {
                           if (!state.contains("num_features")) {
                               throw py::value_error("RunningStats.__setstate__: missing key 'num_features'");
                           }
                           auto self = std::make_unique<PyRunningStats>(
                               parse_num_features(state["num_features"]), 0.0, 1e-5, NonFinite::raise);
                           load_state_dict(*self, state);
                           return self;
                       }));
    cls.def(
        "_noop", [](PyRunningStats&, py::handle, py::handle) {}, "x"_a, "out"_a = py::none(),
        "Does nothing: the per-call floor of a pybind11 method, for bench/bench_streaming.py.");
    add_fast_method(cls.ptr(), "_noop_fastcall", &fast_noop, "_noop_fastcall($self, x, out=None)",
                    "_noop_fastcall(x, out=None)\nParses its arguments like update_normalize, then does nothing: the "
                    "floor of the vectorcall entry points, for bench/bench_streaming.py.");
}

}  // namespace simdnorm::bindings
