// Argument checking and layout analysis shared by the bindings.
#include "array_args.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <numeric>
#include <sstream>

#include "output_buffers.hpp"
#include "recycled_output.hpp"

namespace simdnorm::bindings {
namespace {


std::size_t normalize_axis(py::handle item, std::size_t ndim, const char* name) {
    if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item)) {
        throw py::type_error(std::string(name) + " must be an int or a tuple of ints, got " +
                             std::string(py::str(py::type::of(item).attr("__name__"))));
    }
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(item.ptr(), &overflow);
    if (value == -1 && PyErr_Occurred()) throw py::error_already_set();
    const long long n = static_cast<long long>(ndim);
    if (overflow != 0 || value < -n || value >= n) {
        throw py::value_error(std::string(name) + " " + std::string(py::str(item)) + " is out of bounds for an array of " +
                              std::to_string(ndim) + " dimension" + (ndim == 1 ? "" : "s"));
    }
    return static_cast<std::size_t>(value < 0 ? value + n : value);
}

struct Axis {
    std::size_t size;
    std::ptrdiff_t stride;  // elements
};

// Axes of one role in describe_layout: a fixed-capacity list (NumPy arrays have at most 64
// dimensions), so the per-call layout analysis allocates nothing.
class AxisList {
public:
    static constexpr std::size_t kCapacity = 64;
    void push_back(const Axis& axis) { items_[count_++] = axis; }
    bool empty() const { return count_ == 0; }
    std::size_t size() const { return count_; }
    const Axis& operator[](std::size_t i) const { return items_[i]; }
    const Axis& back() const { return items_[count_ - 1]; }

private:
    std::array<Axis, kCapacity> items_;
    std::size_t count_ = 0;
};

// Consecutive axes merge into one when each stride equals the next stride times the next size.
bool mergeable(const AxisList& axes) {
    for (std::size_t i = 0; i + 1 < axes.size(); ++i) {
        if (axes[i].stride != axes[i + 1].stride * static_cast<std::ptrdiff_t>(axes[i + 1].size)) return false;
    }
    return true;
}

std::size_t product(const AxisList& axes) {
    std::size_t n = 1;
    for (std::size_t i = 0; i < axes.size(); ++i) n *= axes[i].size;
    return n;
}

// The byte strides np.empty_like(a) gives a non-C-contiguous a (order='K'): Fortran order when a
// is F-contiguous, else dense with the axes ordered by decreasing |stride| (ties: axis order).
std::vector<py::ssize_t> keep_order_strides(const py::array& a) {
    const auto ndim = static_cast<std::size_t>(a.ndim());
    std::vector<std::size_t> order(ndim);  // outermost axis first
    std::iota(order.begin(), order.end(), std::size_t(0));
    if (a.flags() & py::array::f_style) {
        std::reverse(order.begin(), order.end());
    } else {
        const auto magnitude = [&](std::size_t i) { return std::abs(a.strides(static_cast<py::ssize_t>(i))); };
        std::stable_sort(order.begin(), order.end(),
                         [&](std::size_t i, std::size_t j) { return magnitude(i) > magnitude(j); });
    }
    std::vector<py::ssize_t> strides(ndim);
    py::ssize_t stride = a.itemsize();
    for (std::size_t k = ndim; k-- > 0;) {
        strides[order[k]] = stride;
        stride *= a.shape(static_cast<py::ssize_t>(order[k]));
    }
    return strides;
}

// Leaked on purpose: a static py::object would be released after the interpreter has finalized.
py::handle numpy_function(const char* name) {
    return py::object(py::module_::import("numpy").attr(name)).release();
}

}  // namespace

std::string shape_string(const std::vector<py::ssize_t>& shape) {
    std::ostringstream s;
    s << "(";
    for (std::size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
    if (shape.size() == 1) s << ",";
    s << ")";
    return s.str();
}

std::vector<py::ssize_t> shape_of(const py::array& a) { return {a.shape(), a.shape() + a.ndim()}; }

bool has_shape(const py::array& a, const std::vector<py::ssize_t>& shape) {
    return static_cast<std::size_t>(a.ndim()) == shape.size() && std::equal(shape.begin(), shape.end(), a.shape());
}

bool same_shape(const py::array& a, const py::array& b) {
    return a.ndim() == b.ndim() && std::equal(a.shape(), a.shape() + a.ndim(), b.shape());
}

py::array input_array(py::handle x, const char* name) {
    py::array a = py::isinstance<py::array>(x) ? py::reinterpret_borrow<py::array>(x) : py::array::ensure(x);
    if (!a) throw py::type_error(std::string(name) + " must be a NumPy array or array-like");
    const char kind = a.dtype().kind();
    const auto size = a.dtype().itemsize();
    if (kind != 'f' || (size != 4 && size != 8)) {
        throw py::type_error(std::string(name) + " must have dtype float32 or float64, got " + dtype_name(a) +
                             " (convert explicitly, e.g. x.astype(np.float32))");
    }
    if (!a.dtype().is(py::dtype::of<float>()) && !a.dtype().is(py::dtype::of<double>())) {
        if (a.dtype().attr("byteorder").cast<std::string>() == ">") {
            throw py::type_error(std::string(name) + " must be in native byte order, got " + dtype_name(a));
        }
    }
    return a;
}

Dtype dtype_of(const py::array& a) { return a.dtype().itemsize() == 4 ? Dtype::f32 : Dtype::f64; }

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

long long int_value(py::handle obj, const char* name) {
    int overflow = 0;
    const long long value = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
    if (value == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow != 0) throw py::value_error(std::string(name) + " " + std::string(py::str(obj)) + " is out of range");
    return value;
}

double check_eps(double eps, const char* name) {
    if (!std::isfinite(eps) || eps <= 0.0) {
        std::ostringstream s;
        s << name << " must be a finite number > 0, got " << eps;
        throw py::value_error(s.str());
    }
    return eps;
}

double check_eps(double eps, Dtype dtype, const char* name) {
    check_eps(eps, name);
    const double smallest = dtype == Dtype::f32 ? double(std::numeric_limits<float>::min()) : std::numeric_limits<double>::min();
    if (eps < smallest) {
        std::ostringstream s;
        s << name << " must be at least the smallest normal " << (dtype == Dtype::f32 ? "float32" : "float64") << " ("
          << smallest << ") for " << (dtype == Dtype::f32 ? "float32" : "float64") << " data, got " << eps;
        throw py::value_error(s.str());
    }
    return eps;
}

std::vector<char> normalized_axes(py::handle axis, std::size_t ndim) {
    std::vector<char> flags(ndim, 0);
    if (py::isinstance<py::tuple>(axis) || py::isinstance<py::list>(axis)) {
        const py::sequence items = py::reinterpret_borrow<py::sequence>(axis);
        if (items.size() == 0) throw py::value_error("axis must name at least one axis, got ()");
        for (py::handle item : items) {
            const std::size_t k = normalize_axis(item, ndim, "axis");
            if (flags[k]) throw py::value_error("axis contains a repeated axis: " + std::string(py::repr(axis)));
            flags[k] = 1;
        }
        return flags;
    }
    if (ndim == 0) throw py::value_error("x must have at least 1 dimension, got a 0-d array");
    for (std::size_t k = normalize_axis(axis, ndim, "axis"); k < ndim; ++k) flags[k] = 1;
    return flags;
}

std::vector<char> single_axis(py::handle axis, std::size_t ndim, std::size_t min_ndim, const char* op) {
    if (ndim < min_ndim) {
        throw py::value_error(std::string(op) + ": x must have at least " + std::to_string(min_ndim) +
                              " dimensions (N, C, ...), got " + std::to_string(ndim));
    }
    if (!py::isinstance<py::int_>(axis) || py::isinstance<py::bool_>(axis)) {
        throw py::type_error(std::string(op) + ": axis must be an int (the channel axis), got " +
                             std::string(py::str(py::type::of(axis).attr("__name__"))));
    }
    std::vector<char> flags(ndim, 0);
    flags[normalize_axis(axis, ndim, "axis")] = 1;
    return flags;
}

bool describe_layout(const py::array& a, const std::vector<char>& mid_axes, Layout* layout) {
    const std::ptrdiff_t item = static_cast<std::ptrdiff_t>(a.itemsize());
    if (static_cast<std::size_t>(a.ndim()) > AxisList::kCapacity) {
        throw py::value_error("arrays with more than 64 dimensions are not supported");
    }
    // Size-1 axes carry no layout information: drop them. Split the rest by role, in axis order.
    AxisList before, mid, after, others;
    bool seen_mid = false, mid_contiguous_block = true;
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        const std::size_t size = static_cast<std::size_t>(a.shape(i));
        if (size == 0) {  // empty: nothing is read or written; only the counts matter
            std::size_t outer = 1, mid_count = 1;
            for (py::ssize_t k = 0; k < a.ndim(); ++k) {
                (mid_axes[static_cast<std::size_t>(k)] ? mid_count : outer) *= static_cast<std::size_t>(a.shape(k));
            }
            *layout = Layout{outer, mid_count, 1, 0, 1};
            return true;
        }
        if (a.strides(i) % item != 0) return false;  // misaligned view
        if (size == 1) continue;
        const Axis axis{size, a.strides(i) / item};
        if (mid_axes[static_cast<std::size_t>(i)]) {
            if (!after.empty()) mid_contiguous_block = false;
            mid.push_back(axis);
            seen_mid = true;
        } else {
            others.push_back(axis);
            (seen_mid ? after : before).push_back(axis);
        }
    }
    if (!mergeable(mid)) return false;
    // Rows: the normalized elements are one contiguous run; all other axes merge into `outer`.
    if ((mid.empty() || mid.back().stride == 1) && mergeable(others)) {
        *layout = Layout{product(others), product(mid), 1, others.empty() ? 0 : others.back().stride, 1};
        return true;
    }
    // Columns: (before..., mid..., after...) with `after` contiguous and merged into `inner`.
    if (mid_contiguous_block && !after.empty() && after.back().stride == 1 && mergeable(after) && mergeable(before)) {
        *layout = Layout{product(before), product(mid), product(after), before.empty() ? 0 : before.back().stride,
                         mid.empty() ? 0 : mid.back().stride};
        return true;
    }
    return false;
}

std::vector<py::ssize_t> flagged_shape(const py::array& a, const std::vector<char>& axes) {
    std::vector<py::ssize_t> shape;
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (axes[static_cast<std::size_t>(i)]) shape.push_back(a.shape(i));
    }
    return shape;
}

std::vector<py::ssize_t> kept_shape(const py::array& a, const std::vector<char>& axes) {
    std::vector<py::ssize_t> shape = shape_of(a);
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (axes[i]) shape[i] = 1;
    }
    return shape;
}

std::size_t element_count(const std::vector<py::ssize_t>& shape) {
    std::size_t n = 1;
    for (py::ssize_t s : shape) n *= static_cast<std::size_t>(s);
    return n;
}

py::array param_array(py::handle obj, const char* name, const py::array& like,
                      const std::vector<py::ssize_t>& shape) {
    if (obj.is_none()) return null_array();
    py::array a = null_array();  // a default py::array would allocate an empty NumPy array
    if (py::isinstance<py::array>(obj)) {
        a = py::reinterpret_borrow<py::array>(obj);
        if (!a.dtype().is(like.dtype())) {
            throw py::type_error(std::string(name) + " must have the dtype of x (" + dtype_name(like) + "), got " +
                                 dtype_name(a));
        }
    } else {  // a list or other sequence: take x's dtype
        static const py::handle asarray = numpy_function("asarray");
        a = asarray(obj, like.dtype());
    }
    if (!has_shape(a, shape)) {
        throw py::value_error(std::string(name) + " must have shape " + shape_string(shape) + " (x's normalized axes), got " +
                              shape_string(shape_of(a)));
    }
    return ascontiguous(a);
}

py::array output_array(py::handle out, const py::array& x) {
    if (out.is_none()) {
        const py::dtype dtype = x.dtype();
        const auto nbytes = static_cast<std::size_t>(x.size() * dtype.itemsize());
        // order='K' is C order for C-contiguous and 0-d / 1-d x
        if (x.flags() & py::array::c_style || x.ndim() <= 1) {
            return functions_recycled_output().take(dtype, static_cast<int>(x.ndim()), x.shape(), nbytes, x.data());
        }
        if (nbytes >= kCachedOutputMinBytes) {
            return large_output(dtype, shape_of(x), keep_order_strides(x), nbytes, x.data());
        }
        static const py::handle empty_like = numpy_function("empty_like");
        return empty_like(x);  // keeps x's memory order (order='K')
    }
    if (!py::isinstance<py::array>(out)) throw py::type_error("out must be a NumPy array or None");
    py::array o = py::reinterpret_borrow<py::array>(out);
    if (!o.dtype().is(x.dtype())) {
        throw py::type_error("out must have the dtype of x (" + dtype_name(x) + "), got " + dtype_name(o));
    }
    if (!same_shape(o, x)) {
        throw py::value_error("out must have the shape of x " + shape_string(shape_of(x)) + ", got " +
                              shape_string(shape_of(o)));
    }
    if (!o.writeable()) throw py::value_error("out is read-only");
    return o;
}

namespace {
void byte_span(const py::array& a, std::intptr_t* lo, std::intptr_t* hi) {
    std::intptr_t begin = reinterpret_cast<std::intptr_t>(a.data()), end = begin;
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        const std::intptr_t extent = static_cast<std::intptr_t>(a.shape(i) - 1) * a.strides(i);
        (extent < 0 ? begin : end) += extent;
    }
    *lo = begin;
    *hi = end + a.itemsize();
}
}  // namespace

bool may_share_memory(const py::array& a, const py::array& b) {
    if (a.size() == 0 || b.size() == 0) return false;
    std::intptr_t a_lo, a_hi, b_lo, b_hi;
    byte_span(a, &a_lo, &a_hi);
    byte_span(b, &b_lo, &b_hi);
    return a_lo < b_hi && b_lo < a_hi;
}

bool same_view(const py::array& a, const py::array& b) {
    if (a.data() != b.data() || a.ndim() != b.ndim()) return false;
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (a.shape(i) != b.shape(i) || (a.shape(i) > 1 && a.strides(i) != b.strides(i))) return false;
    }
    return true;
}

py::array move_axes_to_end(const py::array& a, const std::vector<char>& axes) {
    py::list source, destination;
    const py::ssize_t ndim = a.ndim();
    py::ssize_t moved = 0;
    for (py::ssize_t i = 0; i < ndim; ++i) moved += axes[static_cast<std::size_t>(i)] ? 1 : 0;
    py::ssize_t next = ndim - moved;
    for (py::ssize_t i = 0; i < ndim; ++i) {
        if (axes[static_cast<std::size_t>(i)]) {
            source.append(i);
            destination.append(next++);
        }
    }
    static const py::handle moveaxis = numpy_function("moveaxis");
    return moveaxis(a, source, destination);
}

void read_parameters_apart(const py::array& written, py::array* first, py::array* second) {
    if (written.size() == 0) return;
    std::intptr_t w_lo, w_hi;
    byte_span(written, &w_lo, &w_hi);
    for (py::array* a : {first, second}) {
        if (!*a || a->nbytes() == 0) continue;
        const auto lo = reinterpret_cast<std::intptr_t>(a->data());
        if (lo < w_hi && w_lo < lo + static_cast<std::intptr_t>(a->nbytes())) *a = py::array::ensure(a->attr("copy")());
    }
}

py::array ascontiguous(const py::array& a) {
    if (a.flags() & py::array::c_style) return a;
    static const py::handle ascontiguousarray = numpy_function("ascontiguousarray");
    return ascontiguousarray(a);
}

void copy_into(const py::array& destination, const py::array& source) {
    static const py::handle copyto = numpy_function("copyto");
    copyto(destination, source);
}

}  // namespace simdnorm::bindings
