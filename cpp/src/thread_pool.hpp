// A small persistent thread pool (no OpenMP: its runtime can clash with the ones PyTorch and
// NumPy's BLAS load into the same process). Workers start lazily; fork() in the child resets it.
#pragma once

#include <cstddef>
#include <functional>

namespace simdnorm {

// Runs task(i) for i in [0, tasks) on up to get_num_threads() threads, the caller included, and
// returns when all are done. If the pool is busy (another thread's call), runs serially in the
// caller: callers must make results independent of which thread runs a task.
void parallel_for(std::size_t tasks, const std::function<void(std::size_t)>& task);

}  // namespace simdnorm
