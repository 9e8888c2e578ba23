// Tails must never touch memory past the last element (NEON has no masked loads, so its tails go
// through a lane buffer). Every array here ends right before a PROT_NONE guard page: an over-read
// or over-write of even one lane faults and fails the run.
#include "support.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>

using namespace simdnorm_test;

namespace {

// n elements of T whose last one is the last byte before an inaccessible page.
template <class T>
class GuardedArray {
  public:
    explicit GuardedArray(std::size_t n, T value) {
        const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
        data_pages_ = (n * sizeof(T) + page - 1) / page + 1;  // + 1: room before the data too
        bytes_ = (data_pages_ + 1) * page;
        void* region = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(region != MAP_FAILED);
        region_ = static_cast<char*>(region);
        REQUIRE(mprotect(region_ + data_pages_ * page, page, PROT_NONE) == 0);
        data_ = reinterpret_cast<T*>(region_ + data_pages_ * page) - n;
        for (std::size_t i = 0; i < n; ++i) data_[i] = value;
    }
    ~GuardedArray() { munmap(region_, bytes_); }
    GuardedArray(const GuardedArray&) = delete;
    GuardedArray& operator=(const GuardedArray&) = delete;
    T* data() { return data_; }

  private:
    char* region_ = nullptr;
    std::size_t bytes_ = 0, data_pages_ = 0;
    T* data_ = nullptr;
};

template <class T>
void fill_normal(T* p, std::size_t n, std::uint64_t seed) {
    const std::vector<T> v = normal_values<T>(n, seed);
    for (std::size_t i = 0; i < n; ++i) p[i] = v[i];
}

template <class T>
void run_guarded(const Variant& v, std::size_t n) {
    const KernelSet<T>& k = v.get<T>();
    GuardedArray<T> x(2 * n, T(0)), y(2 * n, T(0)), weight(n, T(1.5)), bias(n, T(0.25)), center(n, T(0.1));
    GuardedArray<T> mean(n, T(0)), rstd(n, T(0));
    GuardedArray<double> mean64(n, 0.0), m2(n, 0.0);
    // Per-channel parameters of the two-channel (columns / channels-first) calls.
    GuardedArray<T> weight2(2, T(1.5)), bias2(2, T(0.25)), center2(2, T(0.1));
    fill_normal(x.data(), 2 * n, n);

    NormArgs<T> rows;  // two rows of n; the second ends at the guard
    rows.x = x.data();
    rows.y = y.data();
    rows.weight = weight.data();
    rows.bias = bias.data();
    rows.outer = 2;
    rows.mid = n;
    rows.x_outer_stride = rows.y_outer_stride = static_cast<std::ptrdiff_t>(n);
    k.layer_norm(rows);
    k.rms_norm(rows);

    NormArgs<T> columns;  // (1, 2, n): vectors along the inner run, the second run ends at the guard
    columns.x = x.data();
    columns.y = y.data();
    columns.weight = weight2.data();
    columns.bias = bias2.data();
    columns.mean = mean.data();  // n slots, ending at the guard
    columns.rstd = rstd.data();
    columns.outer = 1;
    columns.mid = 2;
    columns.inner = n;
    columns.x_mid_stride = columns.y_mid_stride = static_cast<std::ptrdiff_t>(n);
    columns.x_outer_stride = columns.y_outer_stride = static_cast<std::ptrdiff_t>(2 * n);
    k.layer_norm(columns);
    k.rms_norm(columns);

    BatchStatsArgs<T> stats;
    stats.x = x.data();
    stats.mean = mean64.data();
    stats.m2 = m2.data();
    stats.outer = 2;  // channels-last: two rows of n channels
    stats.mid = n;
    stats.x_outer_stride = static_cast<std::ptrdiff_t>(n);
    k.batch_stats(stats);
    stats.outer = 1;  // channels-first: one channel, one run of 2n
    stats.mid = 1;
    stats.inner = 2 * n;
    k.batch_stats(stats);

    ChannelAffineArgs<T> affine;
    affine.x = x.data();
    affine.y = y.data();
    affine.center = center.data();
    affine.scale = weight.data();
    affine.offset = bias.data();
    affine.outer = 2;  // channels-last
    affine.mid = n;
    affine.x_outer_stride = affine.y_outer_stride = static_cast<std::ptrdiff_t>(n);
    k.channel_affine(affine);
    affine.center = center2.data();
    affine.scale = weight2.data();
    affine.offset = bias2.data();
    affine.outer = 1;  // channels-first: two channels of n
    affine.mid = 2;
    affine.inner = n;
    affine.x_mid_stride = affine.y_mid_stride = static_cast<std::ptrdiff_t>(n);
    affine.x_outer_stride = affine.y_outer_stride = static_cast<std::ptrdiff_t>(2 * n);
    k.channel_affine(affine);
    CHECK(std::isfinite(static_cast<double>(y.data()[2 * n - 1])));
}

}  // namespace

TEST_SUITE("memory_safety") {
    TEST_CASE_TEMPLATE("tails stop at the last element (guard page)", T, float, double) {
        for (const Variant& v : runnable_variants()) {
            INFO("variant " << std::string(v.name()));
            for (std::size_t n = 1; n <= 70; ++n) {
                CAPTURE(n);
                run_guarded<T>(v, n);
            }
        }
    }
}
#endif
