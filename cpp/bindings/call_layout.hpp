// Resolves where a kernel reads and writes: x and the output in one (outer, mid, inner) layout,
// with a copy only when x's strides or the output's aliasing rule it out.
#pragma once

#include "array_args.hpp"
#include "recycled_output.hpp"

namespace simdnorm::bindings {

struct CallLayout {
    py::array x = null_array();       // what the kernel reads
    py::array y = null_array();       // what the kernel writes
    py::array result = null_array();  // what the caller gets (y, or `out`, or x's layout when a copy was needed)
    py::array copy_back_view = null_array();  // when set: after the kernel, copy y into this view of `result`
    Layout x_layout, y_layout;  // same counts; strides of each
};

// mid_axes: the normalized (or channel) axes of x. out: None or the caller's out array.
CallLayout resolve_call_layout(const py::array& x, const std::vector<char>& mid_axes, py::handle out);

// The common call, without resolve_call_layout's general analysis: x C-contiguous with `mid` its
// trailing elements, out None or a C-contiguous array of x's shape that is x itself or does not
// overlap it; false (nothing set) when it does not apply. Without `out`, the result is `recycled`'s.
bool contiguous_rows_call(const py::array& x, std::size_t mid, py::handle out, RecycledOutput& recycled,
                          CallLayout* call);

// Runs the copy-back step of a resolved call, if any.
void finish_call(const CallLayout& call);

}  // namespace simdnorm::bindings
