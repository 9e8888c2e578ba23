// Resolves the (outer, mid, inner) layout of a call; see call_layout.hpp.
#include "call_layout.hpp"

namespace simdnorm::bindings {
namespace {

bool same_layout(const Layout& a, const Layout& b) {
    return a.outer == b.outer && a.mid == b.mid && a.inner == b.inner && (a.inner == 1) == (b.inner == 1);
}

}  // namespace

CallLayout resolve_call_layout(const py::array& x, const std::vector<char>& mid_axes, py::handle out) {
    CallLayout call;
    call.result = output_array(out, x);
    if (describe_layout(x, mid_axes, &call.x_layout)) {
        call.x = x;
        const bool aliased = may_share_memory(x, call.result) && !same_view(x, call.result);
        if (!aliased && describe_layout(call.result, mid_axes, &call.y_layout) &&
            same_layout(call.x_layout, call.y_layout)) {
            call.y = call.result;
            return call;
        }
        // out's strides don't fit x's layout, or out partially overlaps x: write a fresh array
        // laid out like x, then copy it into out.
        call.y = output_array(py::none(), x);
        if (describe_layout(call.y, mid_axes, &call.y_layout) && same_layout(call.x_layout, call.y_layout)) {
            call.copy_back_view = call.result;
            return call;
        }
    }
    // x's strides fit no layout (e.g. normalized axes interleaved in memory): move the normalized
    // axes last and copy once, then move the result back into the caller's layout.
    const std::size_t ndim = static_cast<std::size_t>(x.ndim());
    std::size_t moved = 0;
    for (char flag : mid_axes) moved += flag ? 1 : 0;
    std::vector<char> last_axes(ndim, 0);
    for (std::size_t i = ndim - moved; i < ndim; ++i) last_axes[i] = 1;
    call.x = ascontiguous(move_axes_to_end(x, mid_axes));
    call.y = output_array(py::none(), call.x);
    describe_layout(call.x, last_axes, &call.x_layout);  // C-contiguous: always the rows layout
    call.y_layout = call.x_layout;
    call.copy_back_view = move_axes_to_end(call.result, mid_axes);
    return call;
}

bool contiguous_rows_call(const py::array& x, std::size_t mid, py::handle out, RecycledOutput& recycled,
                          CallLayout* call) {
    const auto size = static_cast<std::size_t>(x.size());
    if (mid == 0 || size == 0 || !(x.flags() & py::array::c_style)) return false;
    if (out.is_none()) {
        const py::dtype dtype = x.dtype();
        call->result = recycled.take(dtype, static_cast<int>(x.ndim()), x.shape(),
                                     size * static_cast<std::size_t>(dtype.itemsize()), x.data());
    } else {
        if (!py::isinstance<py::array>(out)) return false;
        const auto o = py::reinterpret_borrow<py::array>(out);
        if (o.ndim() != x.ndim() || !o.dtype().is(x.dtype()) || !o.writeable() || !(o.flags() & py::array::c_style)) {
            return false;
        }
        for (py::ssize_t i = 0; i < x.ndim(); ++i) {
            if (o.shape(i) != x.shape(i)) return false;
        }
        if (o.data() != x.data() && may_share_memory(o, x)) return false;
        call->result = o;
    }
    call->x = x;
    call->y = call->result;
    const auto m = static_cast<std::ptrdiff_t>(mid);
    call->x_layout = Layout{size / mid, mid, 1, m, 1};
    call->y_layout = call->x_layout;
    return true;
}

void finish_call(const CallLayout& call) {
    if (call.copy_back_view) copy_into(call.copy_back_view, call.y);
}

}  // namespace simdnorm::bindings
