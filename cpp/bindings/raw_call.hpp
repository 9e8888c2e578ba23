// Helpers for the hand-written CPython entry points (module functions, module call slots,
// RunningStats' methods) that bypass pybind11's dispatcher on per-call paths: with keyword
// arguments it builds a Python string per parameter name on every call, which costs more than a
// 768-wide kernel.
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

// Vectorcall argument parsing: fills values[0..n) from the positional args (at most
// max_positional) and the keywords named in `names`; absent ones are null. The first `required`
// must be present. Raises TypeError like CPython's own messages, prefixed with `function`.
void parse_arguments(const char* function, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                     const char* const* names, int n, int max_positional, int required, PyObject** values);

// A float argument: absent -> fallback; anything float() accepts; TypeError naming it otherwise.
double number_argument(PyObject* value, double fallback, const char* name);
// A flag: absent -> fallback; otherwise its truth value.
bool flag_argument(PyObject* value, bool fallback);

using FastFunction = PyObject* (*)(PyObject*, PyObject* const*, Py_ssize_t, PyObject*);

// Adds a METH_FASTCALL | METH_KEYWORDS method to a type, or a function to a module. `signature`
// ("name(x, out=None)", "$self" first for methods) becomes __text_signature__ for inspect; the first
// line of `doc` (its own signature line) is replaced by it.
void add_fast_method(PyObject* type, const char* name, FastFunction impl, const char* signature, const char* doc);
void add_fast_function(pybind11::module_& m, const char* name, FastFunction impl, const char* signature,
                       const char* doc);

}  // namespace simdnorm::bindings
