// An owner's last small output, handed back to its next call once the caller has let go of it.
//
// A fresh small NumPy array costs ~0.1 µs of a ~0.5 µs single-row call: NumPy looks its allocator
// up in a context variable, allocates the array object, its shape and its data, and frees all of it
// when the caller drops the result. The owner (a module, a RunningStats, or the process-wide slot
// of the functions) keeps the array it returned instead. When the next call wants the same dtype
// and shape, and the owner's reference is the only one left (no variable, view, memoryview, weak
// reference or tensor sharing it), the call writes into that array and returns it again: the
// caller sees a fresh result, as from an allocation. Callers hold the GIL while they take one.
#pragma once

#include <cstddef>

#include "array_args.hpp"

namespace simdnorm::bindings {

// Outputs of fewer bytes are recycled: the ones NumPy allocates (output_buffers.hpp, new_output).
// An owner keeps at most one, so it holds below 128 KiB between calls.
constexpr std::size_t kRecycledOutputMaxBytes = std::size_t(128) << 10;

class RecycledOutput {
public:
    RecycledOutput() = default;
    // A copied owner starts without one: sharing the array would only make both allocate.
    RecycledOutput(const RecycledOutput&) {}
    RecycledOutput& operator=(const RecycledOutput&) {
        held_ = py::object();
        return *this;
    }

    // A new C-contiguous array of dtype and shape[0..ndim) (nbytes in all), as new_output makes it:
    // the held one when nobody else can see it and it is still the array this made, else a fresh
    // one (held from now on when small). `input` as for new_output.
    py::array take(const py::dtype& dtype, int ndim, const py::ssize_t* shape, std::size_t nbytes,
                   const void* input);

private:
    bool reusable(const py::dtype& dtype, int ndim, const py::ssize_t* shape) const;

    py::object held_;
};

// The functions' slot, one for the process (layer_norm, rms_norm, batch_norm, scale_shift share it).
RecycledOutput& functions_recycled_output();

}  // namespace simdnorm::bindings
