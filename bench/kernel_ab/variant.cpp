// One build of one ISA's kernels for run.sh: compiled twice, with -Dsimdnorm=<namespace> and the
// include path of either source tree, so that both trees' kernels live in one process. Exports
// the kernels the driver times under C names prefixed by VARIANT (kab_a_ / kab_b_).
#define KAB_CAT2(a, b) a##b
#define KAB_CAT(a, b) KAB_CAT2(a, b)
#define KAB_STR2(a) #a
#define KAB_STR(a) KAB_STR2(a)
#include KAB_STR(KAB_ISA/kernels.cpp)

namespace kernels = simdnorm::KAB_ISA;

extern "C" {
void KAB_CAT(VARIANT, layer_norm)(const void* args) {
    kernels::layer_norm<float>(*static_cast<const simdnorm::NormArgs<float>*>(args));
}
void KAB_CAT(VARIANT, rms_norm)(const void* args) {
    kernels::rms_norm<float>(*static_cast<const simdnorm::NormArgs<float>*>(args));
}
void KAB_CAT(VARIANT, batch_stats)(const void* args) {
    kernels::batch_stats<float>(*static_cast<const simdnorm::BatchStatsArgs<float>*>(args));
}
void KAB_CAT(VARIANT, channel_affine)(const void* args) {
    kernels::channel_affine<float>(*static_cast<const simdnorm::ChannelAffineArgs<float>*>(args));
}
void KAB_CAT(VARIANT, batch_norm_train)(const void* args) {
    kernels::batch_norm_train<float>(*static_cast<const simdnorm::BatchNormTrainArgs<float>*>(args));
}
}
