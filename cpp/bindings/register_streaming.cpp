// Placeholder: the streaming bindings are being written.
#include <pybind11/pybind11.h>

namespace simdnorm::bindings {
void register_streaming(pybind11::module_&) {}
}  // namespace simdnorm::bindings
