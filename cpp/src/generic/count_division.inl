// Division by a count (rows, channels' values, a row's length) as a multiply when the count is a
// power of two. Included by generic/reductions.inl and generic/channel_fold.inl inside their
// namespaces; the guard keeps one copy per translation unit (both land in one unnamed namespace in
// the ISA variants' kernels). No library calls: see the top of channel_fold.inl.
#ifndef SIMDNORM_COUNT_DIVISION_INL
#define SIMDNORM_COUNT_DIVISION_INL

// x / n for an integer count n >= 1. When n is a power of two, 1 / n is exact and x * (1 / n)
// rounds the same real number as x / n, so it has the divide's bits for every x (zeros,
// subnormals, infinities and NaN included) at the cost of a multiply: a divide of a vector of
// doubles takes ~16 cycles on Intel's AVX-512 cores, and the per-lane divides of channels-last
// statistics over 8 rows were two thirds of their time. Batch sizes and widths are mostly powers
// of two; other counts keep the divide.
class CountDivisor {
public:
    // The inverse only for powers of two: per row, other counts would pay a divide for nothing.
    explicit CountDivisor(double count)
        : count_(count), exact_(is_power_of_two(count)), inverse_(exact_ ? 1.0 / count : 0.0) {}
    double count() const { return count_; }
    double inverse() const { return inverse_; }  // exact_inverse() only
    bool exact_inverse() const { return exact_; }
    double divide(double x) const { return exact_ ? x * inverse_ : x / count_; }

private:
    static bool is_power_of_two(double n) {
        if (!(n >= 1.0 && n < 18446744073709551616.0)) return false;  // [1, 2^64), not NaN
        const auto k = static_cast<unsigned long long>(n);
        return static_cast<double>(k) == n && (k & (k - 1)) == 0;
    }
    double count_;
    bool exact_;
    double inverse_;  // 1 / count_ when exact_
};

#endif  // SIMDNORM_COUNT_DIVISION_INL
