// C++ access to simdnorm.RunningStats objects for other bindings (BatchNorm.from_running_stats).
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace simdnorm::bindings {

// A consistent copy of a RunningStats object's statistics, taken under its lock.
struct RunningStatsSnapshot {
    std::size_t num_features = 0;
    std::int64_t count = 0;
    double momentum = 0.0;  // 0: exact mode
    double eps = 0.0;       // the object's default eps
    bool frozen = false;
    std::vector<double> mean;          // float64, num_features (NaN when count == 0)
    std::vector<double> var;           // population variance (NaN when count == 0)
    std::vector<double> var_unbiased;  // exact mode: ddof=1 (NaN when count < 2); momentum mode: empty
};

// True when obj is a simdnorm.RunningStats.
bool is_running_stats(pybind11::handle obj);

// Throws TypeError when obj is not a simdnorm.RunningStats.
RunningStatsSnapshot running_stats_snapshot(pybind11::handle obj);

}  // namespace simdnorm::bindings
