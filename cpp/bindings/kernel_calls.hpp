// Calls into the dispatched operations from a resolved CallLayout, shared by the functional
// bindings (register_norms.cpp, register_batch_norm.cpp) and the modules (register_modules.cpp).
// No checks here: callers validate everything before any of these runs.
#pragma once

#include "array_args.hpp"
#include "call_layout.hpp"
#include "channel_fold.hpp"
#include "channel_workspace.hpp"
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

// Runs call(), with the GIL released when the input has enough elements for that to pay.
template <class Call>
void run_releasing_gil_if_large(std::size_t elements, const Call& call) {
    if (elements >= kReleaseGilElements) {
        py::gil_scoped_release nogil;
        call();
    } else {
        call();
    }
}

// x, y, weight, bias, the layout and eps of args structs that normalize call.x into call.y.
template <class Args, class T>
Args normalize_args(const CallLayout& call, const T* weight, const T* bias, double eps) {
    Args a;
    a.x = static_cast<const T*>(call.x.data());
    a.y = static_cast<T*>(py::array(call.y).mutable_data());
    a.weight = weight;
    a.bias = bias;
    set_layout(a, call);
    a.eps = eps;
    return a;
}

template <class T>
NormArgs<T> norm_args(const CallLayout& call, const T* weight, const T* bias, double eps) {
    return normalize_args<NormArgs<T>>(call, weight, bias, eps);
}

// layer_norm (layer) or rms_norm, releasing the GIL for large inputs.
template <class T>
void run_norm(bool layer, const NormArgs<T>& args, std::size_t elements) {
    run_releasing_gil_if_large(elements, [&] { layer ? simdnorm::layer_norm(args) : simdnorm::rms_norm(args); });
}

// channel_affine's arguments for y = (x - center) * scale + offset per channel. center may be null.
template <class T>
ChannelAffineArgs<T> channel_affine_args(const CallLayout& call, const T* center, const T* scale, const T* offset) {
    ChannelAffineArgs<T> a;
    a.x = static_cast<const T*>(call.x.data());
    a.y = static_cast<T*>(py::array(call.y).mutable_data());
    a.center = center;
    a.scale = scale;
    a.offset = offset;
    set_layout(a, call);
    return a;
}

// y = (x - center) * scale + offset per channel, through the dispatched kernel. center may be null.
template <class T>
void apply_channel_affine(const CallLayout& call, const T* center, const T* scale, const T* offset) {
    const ChannelAffineArgs<T> a = channel_affine_args(call, center, scale, offset);
    run_releasing_gil_if_large(static_cast<std::size_t>(call.x.size()), [&] { simdnorm::channel_affine(a); });
}

// batch_stats' arguments for call.x: mean and M2 per channel (count = outer * inner) into
// mean[mid], m2[mid].
template <class T>
BatchStatsArgs<T> batch_stats_args(const CallLayout& call, double* mean, double* m2) {
    BatchStatsArgs<T> a;
    a.x = static_cast<const T*>(call.x.data());
    a.outer = call.x_layout.outer;
    a.mid = call.x_layout.mid;
    a.inner = call.x_layout.inner;
    a.x_outer_stride = call.x_layout.outer_stride;
    a.x_mid_stride = call.x_layout.mid_stride;
    a.mean = mean;
    a.m2 = m2;
    return a;
}

// Per-channel mean and M2 of call.x into mean[mid], m2[mid].
template <class T>
void compute_batch_stats(const CallLayout& call, double* mean, double* m2) {
    const BatchStatsArgs<T> a = batch_stats_args<T>(call, mean, m2);
    run_releasing_gil_if_large(static_cast<std::size_t>(call.x.size()), [&] { simdnorm::batch_stats(a); });
}

// Training-mode forward: the batch statistics of call.x into mean / m2 (count = outer * inner per
// channel) and y normalized with them, then weight and bias. Channels-first inputs whose channels
// fit in cache take the fused kernel (x read once from memory); the rest take the statistics with
// their fold (batch_stats_folded, into ws), then the affine pass. Both fold alike; the fused kernel
// always subtracts the center. With `running` (its mean, m2, count and channels are ignored), the
// second path also updates the running statistics in the statistics' tasks; returns whether it did
// (the caller updates them after the call otherwise). Its arrays must not overlap x, y, weight or
// bias, and count must be above 1.
template <class T, class S>
bool batch_norm_training_forward(const CallLayout& call, const T* weight, const T* bias, double eps, double* mean,
                                 double* m2, ChannelWorkspace& ws, const RunningUpdateArgs<S>* running) {
    const simdnorm::PinActiveIsa pin;  // statistics and normalization on one variant (use_isa elsewhere)
    BatchNormTrainArgs<T> a = normalize_args<BatchNormTrainArgs<T>>(call, weight, bias, eps);
    a.mean = mean;
    a.m2 = m2;
    if (simdnorm::batch_norm_train_fits(a)) {
        run_releasing_gil_if_large(static_cast<std::size_t>(call.x.size()), [&] { simdnorm::batch_norm_train(a); });
        return false;
    }
    const BatchStatsArgs<T> stats = batch_stats_args<T>(call, mean, m2);
    const ChannelArrays<T> folded = ws.folded_for<T>(a.mid);
    FoldArgs<T> fold;  // mean, m2, count and channels come from stats
    fold.eps = eps;
    fold.weight = weight;
    fold.bias = bias;
    fold.center = folded.center;
    fold.scale = folded.scale;
    fold.offset = folded.offset;
    ChannelAffineArgs<T> affine = channel_affine_args<T>(call, folded.center, folded.scale, folded.offset);
    run_releasing_gil_if_large(static_cast<std::size_t>(call.x.size()), [&] {  // one release for both passes
        const bool centered = running ? simdnorm::batch_stats_folded(stats, fold, *running)
                                      : simdnorm::batch_stats_folded(stats, fold);  // at the active variant's width
        if (!centered) affine.center = nullptr;
        simdnorm::channel_affine(affine);
    });
    return running != nullptr;
}

// The arguments of update_running_stats (or of batch_norm_training_forward's `running`) for
// running statistics of dtype S and the batch mean and M2 of `count` values per channel, PyTorch's
// rule (the unbiased variance). old_mean / old_var hold their values from before the batch, or are
// null to read them in place.
template <class S>
RunningUpdateArgs<S> running_update_args(S* running_mean, S* running_var, const S* old_mean, const S* old_var,
                                         const double* mean, const double* m2, std::size_t channels,
                                         std::size_t count, double momentum) {
    RunningUpdateArgs<S> a;
    a.mean = mean;
    a.m2 = m2;
    a.count = static_cast<double>(count);
    a.momentum = momentum;
    a.running_mean = running_mean;
    a.running_var = running_var;
    a.old_mean = old_mean ? old_mean : running_mean;
    a.old_var = old_var ? old_var : running_var;
    a.channels = channels;
    return a;
}

// The data pointer of an optional (possibly null) parameter array.
template <class T>
const T* data_or_null(const py::array& a) {
    return a ? static_cast<const T*>(a.data()) : nullptr;
}

}  // namespace simdnorm::bindings
