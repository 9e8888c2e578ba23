// Calls into the dispatched operations from a resolved CallLayout, shared by the functional
// bindings (register_norms.cpp, register_batch_norm.cpp) and the modules (register_modules.cpp).
// No checks here: callers validate everything before any of these runs.
#pragma once

#include <cmath>
#include <vector>

#include "array_args.hpp"
#include "call_layout.hpp"
#include "simdnorm/simdnorm.hpp"

namespace simdnorm::bindings {

// The (outer, mid, inner) view and both arrays' strides, for the args structs that read x and write y.
template <class Args>
void set_layout(Args& a, const CallLayout& call) {
    a.outer = call.x_layout.outer;
    a.mid = call.x_layout.mid;
    a.inner = call.x_layout.inner;
    a.x_outer_stride = call.x_layout.outer_stride;
    a.x_mid_stride = call.x_layout.mid_stride;
    a.y_outer_stride = call.y_layout.outer_stride;
    a.y_mid_stride = call.y_layout.mid_stride;
}

template <class T>
NormArgs<T> norm_args(const CallLayout& call, const T* weight, const T* bias, double eps) {
    NormArgs<T> a;
    a.x = static_cast<const T*>(call.x.data());
    a.y = static_cast<T*>(py::array(call.y).mutable_data());
    a.weight = weight;
    a.bias = bias;
    set_layout(a, call);
    a.eps = eps;
    return a;
}

// layer_norm (layer) or rms_norm, releasing the GIL for large inputs.
template <class T>
void run_norm(bool layer, const NormArgs<T>& args, std::size_t elements) {
    if (elements >= kReleaseGilElements) {
        py::gil_scoped_release nogil;
        layer ? simdnorm::layer_norm(args) : simdnorm::rms_norm(args);
    } else {
        layer ? simdnorm::layer_norm(args) : simdnorm::rms_norm(args);
    }
}

// y = (x - center) * scale + offset per channel, through the dispatched kernel. center may be null.
template <class T>
void apply_channel_affine(const CallLayout& call, const T* center, const T* scale, const T* offset) {
    ChannelAffineArgs<T> a;
    a.x = static_cast<const T*>(call.x.data());
    a.y = static_cast<T*>(py::array(call.y).mutable_data());
    a.center = center;
    a.scale = scale;
    a.offset = offset;
    set_layout(a, call);
    if (static_cast<std::size_t>(call.x.size()) >= kReleaseGilElements) {
        py::gil_scoped_release nogil;
        simdnorm::channel_affine(a);
    } else {
        simdnorm::channel_affine(a);
    }
}

// Per-channel mean and M2 of call.x (count = outer * inner per channel).
template <class T>
void compute_batch_stats(const CallLayout& call, std::vector<double>& mean, std::vector<double>& m2) {
    BatchStatsArgs<T> a;
    a.x = static_cast<const T*>(call.x.data());
    a.outer = call.x_layout.outer;
    a.mid = call.x_layout.mid;
    a.inner = call.x_layout.inner;
    a.x_outer_stride = call.x_layout.outer_stride;
    a.x_mid_stride = call.x_layout.mid_stride;
    a.mean = mean.data();
    a.m2 = m2.data();
    if (static_cast<std::size_t>(call.x.size()) >= kReleaseGilElements) {
        py::gil_scoped_release nogil;
        simdnorm::batch_stats(a);
    } else {
        simdnorm::batch_stats(a);
    }
}

// Folding the mean into the offset (y = x * scale + offset, one FMA, no center) costs about
// |mean * scale| ulps of the output; up to this many output units that stays below ~1e-6 for
// float32, so only inputs whose mean sits far from zero in units of their std need the center.
constexpr double kFoldableShift = 16.0;

// Folds per-channel mean / inverse std and the optional affine parameters into the arguments of
// apply_channel_affine. Returns whether the center is needed: if not, center is all zeros and
// offset = bias - mean * scale (callers may pass nullptr for the center). If it is, center is the
// mean rounded to T and the rounding remainder goes into the offset, keeping full precision for
// large means.
template <class T>
bool fold_channels(std::size_t channels, const double* mean, const double* inv_std, const T* weight, const T* bias,
                   T* center, T* scale, T* offset) {
    bool needs_center = false;
    for (std::size_t c = 0; c < channels; ++c) {
        const double s = inv_std[c] * (weight ? double(weight[c]) : 1.0);
        const double shift = mean[c] * s;
        needs_center = needs_center || !(shift <= kFoldableShift && shift >= -kFoldableShift);  // NaN: centered
    }
    for (std::size_t c = 0; c < channels; ++c) {
        const double s = inv_std[c] * (weight ? double(weight[c]) : 1.0);
        const double b = bias ? double(bias[c]) : 0.0;
        center[c] = needs_center ? static_cast<T>(mean[c]) : T(0);
        scale[c] = static_cast<T>(s);
        offset[c] = static_cast<T>(b - (mean[c] - double(center[c])) * s);
    }
    return needs_center;
}

// Normalization with per-channel mean / inverse std (batch statistics), then weight and bias.
template <class T>
void normalize_channels(const CallLayout& call, const std::vector<double>& mean, const std::vector<double>& inv_std,
                        const T* weight, const T* bias) {
    const std::size_t channels = mean.size();
    std::vector<T> center(channels), scale(channels), offset(channels);
    const bool centered =
        fold_channels<T>(channels, mean.data(), inv_std.data(), weight, bias, center.data(), scale.data(), offset.data());
    apply_channel_affine<T>(call, centered ? center.data() : nullptr, scale.data(), offset.data());
}

// Training-mode forward: the batch statistics of call.x into mean / m2 (count = outer * inner per
// channel) and y normalized with them, then weight and bias. Channels-first inputs whose channels
// fit in cache take the fused kernel (x read once); the rest take statistics, then the affine pass.
template <class T>
void batch_norm_training_forward(const CallLayout& call, const T* weight, const T* bias, double eps,
                                 std::vector<double>& mean, std::vector<double>& m2) {
    BatchNormTrainArgs<T> a;
    a.x = static_cast<const T*>(call.x.data());
    a.y = static_cast<T*>(py::array(call.y).mutable_data());
    a.weight = weight;
    a.bias = bias;
    set_layout(a, call);
    a.eps = eps;
    a.mean = mean.data();
    a.m2 = m2.data();
    if (simdnorm::batch_norm_train_fits(a)) {
        if (static_cast<std::size_t>(call.x.size()) >= kReleaseGilElements) {
            py::gil_scoped_release nogil;
            simdnorm::batch_norm_train(a);
        } else {
            simdnorm::batch_norm_train(a);
        }
        return;
    }
    compute_batch_stats<T>(call, mean, m2);
    const double count = static_cast<double>(a.outer * a.inner);
    std::vector<double> inv_std(mean.size());
    for (std::size_t c = 0; c < mean.size(); ++c) inv_std[c] = 1.0 / std::sqrt(m2[c] / count + eps);
    normalize_channels<T>(call, mean, inv_std, weight, bias);
}

// The data pointer of an optional (possibly null) parameter array.
template <class T>
const T* data_or_null(const py::array& a) {
    return a ? static_cast<const T*>(a.data()) : nullptr;
}

}  // namespace simdnorm::bindings
