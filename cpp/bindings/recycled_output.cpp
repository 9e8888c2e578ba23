// An owner's reusable output; see recycled_output.hpp.
#include "recycled_output.hpp"

#include "output_buffers.hpp"

namespace simdnorm::bindings {

static_assert(kRecycledOutputMaxBytes <= kLineAlignedOutputMinBytes,
              "recycled outputs are plain NumPy allocations (no base to check)");

bool RecycledOutput::reusable(const py::dtype& dtype, int ndim, const py::ssize_t* shape) const {
#if defined(Py_GIL_DISABLED)
    // Free-threaded Python: a reference count of 1 does not prove no other thread is about to take one.
    (void)dtype, (void)ndim, (void)shape;
    return false;
#else
    PyObject* const held = held_.ptr();
    if (held == nullptr || Py_REFCNT(held) != 1) return false;
    auto& api = py::detail::npy_api::get();
    if (Py_TYPE(held) != reinterpret_cast<PyTypeObject*>(api.PyArray_Type_)) return false;  // not a subclass
    // A weak reference could still reach it. NumPy keeps the list in the array struct (a positive
    // offset); an offset this cannot read (a managed list, Python 3.12+ heap types) means no reuse.
    const Py_ssize_t weaklist_offset = Py_TYPE(held)->tp_weaklistoffset;
    if (weaklist_offset <= 0 || *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(held) + weaklist_offset) != nullptr) {
        return false;
    }
    // Everything its holder could have changed before letting go: dtype (a view-cast through .dtype),
    // shape and strides (assignable attributes), writeability, and the data (resize reallocates).
    const auto* a = py::detail::array_proxy(held);
    constexpr int kFlags = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_WRITEABLE_ |
                           py::detail::npy_api::NPY_ARRAY_ALIGNED_ | py::detail::npy_api::NPY_ARRAY_OWNDATA_;
    if (a->descr != dtype.ptr() || a->nd != ndim || (a->flags & kFlags) != kFlags || a->base != nullptr) return false;
    py::ssize_t stride = static_cast<py::ssize_t>(dtype.itemsize());
    for (int i = ndim - 1; i >= 0; --i) {
        if (a->dimensions[i] != shape[i] || a->strides[i] != stride) return false;
        stride *= shape[i];
    }
    return true;
#endif
}

py::array RecycledOutput::take(const py::dtype& dtype, int ndim, const py::ssize_t* shape, std::size_t nbytes,
                               const void* input) {
    if (nbytes < kRecycledOutputMaxBytes && reusable(dtype, ndim, shape)) {
        return py::reinterpret_borrow<py::array>(held_);
    }
    py::array fresh = new_output(dtype, ndim, shape, nbytes, input);
    if (nbytes < kRecycledOutputMaxBytes) {
        held_ = fresh;
    } else {
        held_ = py::object();  // a large one is not kept, and the small one held is not wanted now
    }
    return fresh;
}

RecycledOutput& functions_recycled_output() {
    static RecycledOutput* const slot = new RecycledOutput();  // leaked: never released after finalization
    return *slot;
}

}  // namespace simdnorm::bindings
