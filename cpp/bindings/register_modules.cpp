// Placeholder: the modules bindings are being written.
#include <pybind11/pybind11.h>

namespace simdnorm::bindings {
void register_modules(pybind11::module_&) {}
}  // namespace simdnorm::bindings
