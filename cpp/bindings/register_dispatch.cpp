// ISA selection, introspection, thread and output-cache settings.
#include <limits>
#include <stdexcept>
#include <string>

#include "array_args.hpp"
#include "docstrings.hpp"
#include "output_buffers.hpp"
#include "simdnorm/simdnorm.hpp"

namespace simdnorm::bindings {
namespace {

using namespace pybind11::literals;

py::list names(const std::vector<Isa>& isas) {
    py::list result;
    for (Isa isa : isas) result.append(isa_name(isa));
    return result;
}

void set_isa(const std::string& name) {
    Isa isa;
    if (!parse_isa(name, &isa)) {
        throw py::value_error("unknown ISA '" + name + "'; expected one of: scalar, avx2, avx512, neon");
    }
    try {
        set_active_isa(isa);
    } catch (const std::invalid_argument& e) {
        throw py::value_error(e.what());
    }
}

// A byte count: any int-like (operator.index) except bool, >= 0.
std::size_t byte_count(py::handle value, const char* function) {
    if (py::isinstance<py::bool_>(value) || !PyIndex_Check(value.ptr())) {
        throw py::type_error(std::string(function) + ": nbytes must be an int, got " +
                             std::string(py::str(py::type::of(value).attr("__name__"))));
    }
    const auto n = py::reinterpret_steal<py::int_>(PyNumber_Index(value.ptr()));
    if (!n) throw py::error_already_set();
    if (PyObject_RichCompareBool(n.ptr(), py::int_(0).ptr(), Py_LT) == 1) {
        throw py::value_error(std::string(function) + ": nbytes must be >= 0, got " + std::string(py::str(n)));
    }
    const std::size_t bytes = PyLong_AsSize_t(n.ptr());
    if (bytes == static_cast<std::size_t>(-1) && PyErr_Occurred()) throw py::error_already_set();  // OverflowError
    return bytes;
}

// set_num_threads' argument: any Python int, checked here so 2**70 gets the ValueError that 0 gets.
int thread_count(py::handle value) {
    if (py::isinstance<py::bool_>(value) || !PyIndex_Check(value.ptr())) {
        throw py::type_error("set_num_threads: n must be an int, got " +
                             std::string(py::str(py::type::of(value).attr("__name__"))));
    }
    const auto n = py::reinterpret_steal<py::int_>(PyNumber_Index(value.ptr()));
    if (!n) throw py::error_already_set();
    int overflow = 0;
    const long long count = PyLong_AsLongLongAndOverflow(n.ptr(), &overflow);
    if (count == -1 && PyErr_Occurred()) throw py::error_already_set();
    if (overflow != 0 || count < 1 || count > std::numeric_limits<int>::max()) {
        throw py::value_error("set_num_threads: n must be between 1 and " +
                              std::to_string(std::numeric_limits<int>::max()) + ", got " + std::string(py::str(n)));
    }
    return static_cast<int>(count);
}

}  // namespace

void register_dispatch(py::module_& m) {
    m.def("available_isas", [] { return names(supported_isas()); },
          "available_isas() -> list[str]\n\nVariants this CPU can run, best first (always ends with 'scalar').");
    m.def("compiled_isas", [] { return names(compiled_isas()); },
          "compiled_isas() -> list[str]\n\nVariants compiled into this build, best first.");
    m.def("current_isa", [] { return std::string(isa_name(active_isa())); },
          "current_isa() -> str\n\nThe variant every operation currently uses (process-wide).");
    m.def("_set_isa", &set_isa, "name"_a,
          "Switch every operation to the named variant (process-wide). ValueError if the CPU cannot run it.");
    m.def(
        "set_num_threads",
        [](py::handle n) { simdnorm::set_num_threads(thread_count(n)); }, "n"_a,
        "set_num_threads(n)\n\nThreads used by large operations (process-wide; one operation runs on at most 64). "
        "Small inputs always run on the calling thread. Results are bit-identical for every thread count.\n\n"
        "Raises TypeError if n is not an int, ValueError if n < 1 or n > 2**31 - 1.");
    m.def("get_num_threads", &simdnorm::get_num_threads,
          "get_num_threads() -> int\n\nThreads used by large operations (default: CPUs available to this process, "
          "or SIMDNORM_NUM_THREADS).");
    m.def(
        "set_output_cache_limit",
        [](py::handle nbytes) { return set_output_cache_limit(byte_count(nbytes, "set_output_cache_limit")); },
        "nbytes"_a, docs::set_output_cache_limit);
    m.def("get_output_cache_limit", &get_output_cache_limit, docs::get_output_cache_limit);
    m.def(
        "_output_cache_stats",
        [] {
            const OutputCacheStats s = output_cache_stats();
            return py::make_tuple(s.blocks, s.bytes);
        },
        "_output_cache_stats() -> (blocks, bytes)\n\nUnused blocks the output cache holds now.");
    m.def(
        "_tuning",
        [] {
            const py::dict cpu_default("interleave_wide_rows"_a = cpu_default_tuning().interleave_wide_rows);
            return py::dict("interleave_wide_rows"_a = active_tuning().interleave_wide_rows, "cpu_default"_a = cpu_default);
        },
        "_tuning() -> dict\n\nThe kernel path choices in use, and this CPU's defaults (simdnorm/isa.hpp, Tuning).");
    m.def(
        "_set_tuning",
        [](py::handle interleave_wide_rows) {
            Tuning tuning = cpu_default_tuning();
            if (!interleave_wide_rows.is_none()) {
                if (!py::isinstance<py::bool_>(interleave_wide_rows)) {
                    throw py::type_error("_set_tuning: interleave_wide_rows must be a bool or None");
                }
                tuning.interleave_wide_rows = interleave_wide_rows.cast<bool>();
            }
            set_active_tuning(tuning);
        },
        "interleave_wide_rows"_a = py::none(),
        "_set_tuning(interleave_wide_rows=None)\n\nOverride a kernel path choice (process-wide; None: this CPU's "
        "default). For tests and benchmarks: every choice gives the same bits.");
    m.def("_noop", [](py::handle, py::handle) {}, "x"_a, "out"_a = py::none(),
          "Does nothing: the binding-overhead floor used by the benchmarks.");
}

}  // namespace simdnorm::bindings
