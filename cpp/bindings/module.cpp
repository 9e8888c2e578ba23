// The simdnorm._core extension module: registers each topic's bindings.
#include <pybind11/pybind11.h>

#include "output_buffers.hpp"
#include "simdnorm/isa.hpp"

namespace py = pybind11;

namespace simdnorm::bindings {
void register_norms(py::module_& m);
void register_batch_norm(py::module_& m);
void register_dispatch(py::module_& m);
void register_streaming(py::module_& m);
void register_modules(py::module_& m);
void register_capi(py::module_& m);
}  // namespace simdnorm::bindings

PYBIND11_MODULE(_core, m) {
    m.doc() = "simdnorm's compiled core: dispatched SIMD normalization kernels.";
    m.attr("__version__") = SIMDNORM_VERSION;
    // The package's __init__ shows this as a RuntimeWarning: importing must never fail because of the CPU.
    m.attr("_isa_init_warning") = simdnorm::init_active_isa_from_env();
    m.attr("_output_cache_init_warning") = simdnorm::bindings::init_output_cache_from_env();  // same contract
    simdnorm::bindings::register_dispatch(m);
    simdnorm::bindings::register_norms(m);
    simdnorm::bindings::register_batch_norm(m);
    simdnorm::bindings::register_streaming(m);
    simdnorm::bindings::register_modules(m);
    simdnorm::bindings::register_capi(m);  // _C_API capsule: simdnorm/capi.h
}
