// Vectorcall helpers; see raw_call.hpp.
#include "raw_call.hpp"

#include <string>

namespace py = pybind11;

namespace simdnorm::bindings {
namespace {

std::string with_signature(const char* signature, const char* doc) {
    // "name(sig)\n--\n\n" lets inspect.signature() read the signature of a builtin.
    const std::string d = doc;
    const auto first_line = d.find('\n');
    return std::string(signature) + "\n--\n\n" + (first_line == std::string::npos ? d : d.substr(first_line + 1));
}

// Leaked on purpose: the definition must outlive every function object made from it.
PyMethodDef* leaked_def(const char* name, FastFunction impl, const char* signature, const char* doc) {
    return new PyMethodDef{name, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(impl)),
                           METH_FASTCALL | METH_KEYWORDS, (new std::string(with_signature(signature, doc)))->c_str()};
}

// Whether the keyword `key` (a str, as CPython guarantees for kwnames) spells `name`. Keyword
// names are compact ASCII strings in practice, compared here byte by byte: with
// PyUnicode_CompareWithASCIIString (~10 ns a name) matching eps=, the 8th of batch_norm's names,
// cost ~90 ns, and the four keywords of a typical batch_norm call ~0.2 us.
bool keyword_is(PyObject* key, const char* name) {
    if (!PyUnicode_IS_COMPACT_ASCII(key)) return PyUnicode_CompareWithASCIIString(key, name) == 0;
    const auto* text = static_cast<const char*>(PyUnicode_DATA(key));
    const Py_ssize_t length = PyUnicode_GET_LENGTH(key);
    for (Py_ssize_t i = 0; i < length; ++i) {
        if (name[i] == '\0' || name[i] != text[i]) return false;  // a key may contain '\0'
    }
    return name[length] == '\0';
}

}  // namespace

void parse_arguments(const char* function, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames,
                     const char* const* names, int n, int max_positional, int required, PyObject** values) {
    for (int i = 0; i < n; ++i) values[i] = nullptr;
    if (nargs > max_positional) {
        throw py::type_error(std::string(function) + "() takes at most " + std::to_string(max_positional) +
                             " positional argument" + (max_positional == 1 ? "" : "s") + " (" + std::to_string(nargs) +
                             " given)");
    }
    for (Py_ssize_t i = 0; i < nargs; ++i) values[i] = args[i];
    const Py_ssize_t keywords = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < keywords; ++k) {
        PyObject* key = PyTuple_GET_ITEM(kwnames, k);
        int i = 0;
        while (i < n && !keyword_is(key, names[i])) ++i;
        if (i == n) {
            throw py::type_error(std::string(function) + "() got an unexpected keyword argument '" +
                                 py::reinterpret_borrow<py::str>(key).cast<std::string>() + "'");
        }
        if (values[i]) {
            throw py::type_error(std::string(function) + "() got multiple values for argument '" + names[i] + "'");
        }
        values[i] = args[nargs + k];
    }
    for (int i = 0; i < required; ++i) {
        if (!values[i]) throw py::type_error(std::string(function) + "() missing required argument '" + names[i] + "'");
    }
}

double number_argument(PyObject* value, double fallback, const char* name) {
    if (!value) return fallback;
    const double result = PyFloat_AsDouble(value);
    if (result == -1.0 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) throw py::error_already_set();  // an int beyond float's range
        PyErr_Clear();
        throw py::type_error(std::string(name) + " must be a number, got " + Py_TYPE(value)->tp_name);
    }
    return result;
}

bool flag_argument(PyObject* value, bool fallback) {
    if (!value) return fallback;
    const int truth = PyObject_IsTrue(value);
    if (truth < 0) throw py::error_already_set();
    return truth != 0;
}

void add_fast_method(PyObject* type, const char* name, FastFunction impl, const char* signature, const char* doc) {
    py::object descriptor = py::reinterpret_steal<py::object>(
        PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(type), leaked_def(name, impl, signature, doc)));
    if (!descriptor) throw py::error_already_set();
    if (PyObject_SetAttrString(type, name, descriptor.ptr()) != 0) throw py::error_already_set();
}

void add_fast_function(py::module_& m, const char* name, FastFunction impl, const char* signature, const char* doc) {
    py::object function = py::reinterpret_steal<py::object>(
        PyCFunction_NewEx(leaked_def(name, impl, signature, doc), nullptr, m.attr("__name__").ptr()));
    if (!function) throw py::error_already_set();
    m.attr(name) = function;
}

}  // namespace simdnorm::bindings
