// ISA selection, introspection and thread settings.
#include <stdexcept>

#include "array_args.hpp"
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
        [](int n) {
            if (n < 1) throw py::value_error("set_num_threads: n must be >= 1, got " + std::to_string(n));
            simdnorm::set_num_threads(n);
        },
        "n"_a,
        "set_num_threads(n)\n\nThreads used by large operations (process-wide). Small inputs always run on the "
        "calling thread. Results are bit-identical for every thread count.");
    m.def("get_num_threads", &simdnorm::get_num_threads,
          "get_num_threads() -> int\n\nThreads used by large operations (default: CPUs available to this process, "
          "or SIMDNORM_NUM_THREADS).");
    m.def("_noop", [](py::handle, py::handle) {}, "x"_a, "out"_a = py::none(),
          "Does nothing: the binding-overhead floor used by the benchmarks.");
}

}  // namespace simdnorm::bindings
