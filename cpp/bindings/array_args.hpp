// Argument checking and layout analysis shared by the bindings. All checks run before any
// output or running array is written, so a rejected call changes nothing.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <string>
#include <vector>

namespace simdnorm::bindings {

namespace py = pybind11;

// Below this many elements a call keeps the GIL: releasing and re-acquiring it costs more than the work.
constexpr std::size_t kReleaseGilElements = 4096;

enum class Dtype { f32, f64 };

// An absent array (converts to false). A default-constructed py::array is an empty array, not null.
inline py::array null_array() { return py::reinterpret_steal<py::array>(py::handle()); }

// x as a float32 / float64 ndarray (array-likes are converted by NumPy's rules); TypeError otherwise.
py::array input_array(py::handle x, const char* name);
Dtype dtype_of(const py::array& a);
std::string dtype_name(const py::array& a);

// A Python int (type already checked) as long long; ValueError "<name> <value> is out of range"
// when it does not fit (pybind11's own cast would raise a bare RuntimeError).
long long int_value(py::handle obj, const char* name);

// eps must be a finite number > 0.
double check_eps(double eps, const char* name = "eps");
// ... and, for data of `dtype`, at least its smallest normal number: a smaller eps acts as 0 there
// and 1 / sqrt(var + eps) overflows the dtype on a constant row (NaN instead of the bias).
double check_eps(double eps, Dtype dtype, const char* name = "eps");

// Axis sets over x's dimensions: flags[i] is true for axes in the set.
// layer-norm style: int k -> axes k..ndim-1; tuple -> exactly those axes.
std::vector<char> normalized_axes(py::handle axis, std::size_t ndim);
// A single axis (the channel axis of BatchNorm).
std::vector<char> single_axis(py::handle axis, std::size_t ndim, std::size_t min_ndim, const char* op);

// x seen as (outer, mid, inner) with contiguous inner elements (see simdnorm/kernels.hpp).
struct Layout {
    std::size_t outer = 1, mid = 1, inner = 1;
    std::ptrdiff_t outer_stride = 0, mid_stride = 1;  // elements
};

// The layout of `a` where the flagged axes form `mid`, if its strides allow one without a copy.
bool describe_layout(const py::array& a, const std::vector<char>& mid_axes, Layout* layout);

// Shape of the flagged axes, in axis order (the shape weight and bias must have).
std::vector<py::ssize_t> flagged_shape(const py::array& a, const std::vector<char>& axes);
// Shape of a with the flagged axes set to 1 (mean / rstd of return_stats).
std::vector<py::ssize_t> kept_shape(const py::array& a, const std::vector<char>& axes);

std::size_t element_count(const std::vector<py::ssize_t>& shape);
std::vector<py::ssize_t> shape_of(const py::array& a);
// a.shape == shape, without building a vector (per-call checks).
bool has_shape(const py::array& a, const std::vector<py::ssize_t>& shape);
// a.shape == b.shape.
bool same_shape(const py::array& a, const py::array& b);
// "(2, 3)", "(4,)": shapes in error messages, as Python prints tuples.
std::string shape_string(const std::vector<py::ssize_t>& shape);

// A parameter array (weight, bias, scale, ...): None -> empty handle; otherwise it must have x's
// dtype and exactly `shape`; returned C-contiguous (copied only when it is not).
py::array param_array(py::handle obj, const char* name, const py::array& like, const std::vector<py::ssize_t>& shape);

// The output array: a fresh one shaped and laid out like x (np.empty_like; large ones from the
// output cache, output_buffers.hpp), or `out` checked for shape, dtype and writeability.
py::array output_array(py::handle out, const py::array& x);

// True if the memory spans of a and b overlap.
bool may_share_memory(const py::array& a, const py::array& b);
// a and b are the same elements (same data pointer, shape and strides).
bool same_view(const py::array& a, const py::array& b);
// Parameters read while `written` is written (out= holding a weight, as NumPy ufuncs allow): each
// present one whose memory overlaps `written` is replaced by a copy. Parameters are C-contiguous.
void read_parameters_apart(const py::array& written, py::array* first, py::array* second);

// Moves the flagged axes of a to the end (a view) and back.
py::array move_axes_to_end(const py::array& a, const std::vector<char>& axes);
py::array ascontiguous(const py::array& a);
void copy_into(const py::array& destination, const py::array& source);

}  // namespace simdnorm::bindings
