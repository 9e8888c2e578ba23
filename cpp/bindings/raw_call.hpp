// Helpers for the hand-written CPython entry points (module call slots, RunningStats' fastcall
// methods) that bypass pybind11's dispatcher on per-sample paths.
#pragma once

#include <pybind11/pybind11.h>

#include <new>

namespace simdnorm::bindings {

// Runs fn() -> PyObject* and turns any C++ exception into a Python error (returning nullptr), as
// pybind11's dispatcher would: nothing may unwind through CPython.
template <class Fn>
PyObject* guarded(Fn&& fn) noexcept {
    try {
        return fn();
    } catch (pybind11::error_already_set& e) {
        e.restore();
    } catch (const pybind11::builtin_exception& e) {
        e.set_error();
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
    }
    return nullptr;
}

// An optional argument: absent (nullptr) reads as None.
inline pybind11::handle or_none(PyObject* value) {
    return value ? pybind11::handle(value) : pybind11::handle(Py_None);
}

}  // namespace simdnorm::bindings
