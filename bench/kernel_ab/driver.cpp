// Times two builds of the same kernels in one process (run.sh builds them): blocks of calls of
// build A and build B alternate, so both see the same machine state, and the per-block B/A ratios
// give a spread that separates a change from this VM's drift (20-50 % between minutes).
//
//   driver OP SHAPE [--no-weight] [--no-bias] [--stream] [--x-offset B] [--y-offset B] [--w-offset B] [--b-offset B]
//          [--blocks N]
//   --stream: non-temporal stores of y (stream_output), as the library takes for outputs past L3
//   --wide-rows a|b|ab: NormArgs::interleave_wide_rows for A, B or both (Intel's path for LayerNorm /
//     RMSNorm rows of 4-16 KiB); with --base HEAD, `--wide-rows b` times that path against the row
//     groups in one build
//   OP: layer_norm | rms_norm (SHAPE RxF) | batch_stats | channel_affine | batch_norm_train
//       (SHAPE RxF: channels-last, or NxCxHxW: channels-first)
#include <simdnorm/kernels.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using Kernel = void (*)(const void*);
#define KAB_DECLARE(op) extern "C" void kab_a_##op(const void*); extern "C" void kab_b_##op(const void*);
KAB_DECLARE(layer_norm)
KAB_DECLARE(rms_norm)
KAB_DECLARE(batch_stats)
KAB_DECLARE(channel_affine)
KAB_DECLARE(batch_norm_train)

namespace {

struct Shape {
    std::size_t outer = 0, mid = 0, inner = 1;
    std::size_t elements() const { return outer * mid * inner; }
};

std::size_t whole_number(const std::string& text, const std::string& what, bool zero_allowed = false) {
    if (text.empty() || text.size() > 12 || text.find_first_not_of("0123456789") != std::string::npos ||
        (!zero_allowed && std::stoul(text) == 0)) {
        throw std::invalid_argument(what + " must be a " + (zero_allowed ? "whole" : "positive") + " number, not '" +
                                    text + "'");
    }
    return std::stoul(text);
}

Shape parse_shape(const std::string& text) {
    std::vector<std::size_t> dims;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t end = std::min(text.find('x', start), text.size());
        dims.push_back(whole_number(text.substr(start, end - start), "each dimension of " + text));
        start = end + 1;
    }
    if (dims.size() == 2) return {dims[0], dims[1], 1};
    if (dims.size() == 4) return {dims[0], dims[1], dims[2] * dims[3]};
    throw std::invalid_argument("shape must be RxF or NxCxHxW, not " + text);
}

// Page-aligned buffer with `offset` bytes in front of the data (NumPy's large arrays start 16
// bytes into a page; where y sits against x changes store-to-load aliasing).
struct Buffer {
    explicit Buffer(std::size_t count, std::size_t offset) {
        raw = static_cast<char*>(std::aligned_alloc(4096, ((count * sizeof(float) + offset) / 4096 + 1) * 4096));
        data = reinterpret_cast<float*>(raw + offset);
    }
    ~Buffer() { std::free(raw); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    char* raw;
    float* data;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}
double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr,
                     "usage: %s OP SHAPE [--no-weight] [--no-bias] [--stream] [--wide-rows a|b|ab] [--x-offset B] "
                     "[--y-offset B] [--w-offset B] [--b-offset B] [--blocks N]\n",
                     argv[0]);
        return 2;
    }
    const std::string op = argv[1];
    Shape shape;
    bool weight_on = true, bias_on = true, stream = false, wide_rows[2] = {false, false};
    // Bytes into a page where each array starts: NumPy's large arrays start 16 bytes in; 1344 is where
    // it put a 32x4096 result; weight and bias where it put them for 8x4096 (4K aliasing depends on
    // these, normalize_row_group in generic/kernels.inl).
    std::size_t x_offset = 16, y_offset = 1344, w_offset = 3072, b_offset = 2944, blocks = 41;
    try {
        shape = parse_shape(argv[2]);
        for (int i = 3; i < argc; ++i) {
            const std::string flag = argv[i];
            if (flag == "--no-weight") weight_on = false;
            else if (flag == "--no-bias") bias_on = false;
            else if (flag == "--stream") stream = true;
            else if (flag == "--wide-rows" && i + 1 < argc) {
                const std::string sides = argv[++i];
                if (sides != "a" && sides != "b" && sides != "ab") {
                    throw std::invalid_argument("--wide-rows takes a, b or ab");
                }
                wide_rows[0] = sides.find('a') != std::string::npos;
                wide_rows[1] = sides.find('b') != std::string::npos;
            }
            else if (flag == "--x-offset" && i + 1 < argc) x_offset = whole_number(argv[++i], flag, true);
            else if (flag == "--y-offset" && i + 1 < argc) y_offset = whole_number(argv[++i], flag, true);
            else if (flag == "--w-offset" && i + 1 < argc) w_offset = whole_number(argv[++i], flag, true);
            else if (flag == "--b-offset" && i + 1 < argc) b_offset = whole_number(argv[++i], flag, true);
            else if (flag == "--blocks" && i + 1 < argc) blocks = whole_number(argv[++i], flag);
            else throw std::invalid_argument("unknown option " + flag);
        }
    } catch (const std::exception& error) {
        std::fprintf(stderr, "%s %s: %s\n", op.c_str(), argv[2], error.what());
        return 2;
    }
    const std::size_t n = shape.elements();
    Buffer x(n, x_offset % 4096), y(n, y_offset % 4096), weight_buffer(shape.mid, w_offset % 4096),
        bias_buffer(shape.mid, b_offset % 4096);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.5f, 2.0f);
    for (std::size_t i = 0; i < n; ++i) x.data[i] = normal(rng);
    float* const weight = weight_buffer.data;
    float* const bias = bias_buffer.data;
    std::fill(weight, weight + shape.mid, 1.5f);
    std::fill(bias, bias + shape.mid, 0.2f);
    std::vector<float> center(shape.mid, 0.5f);
    std::vector<double> mean(shape.mid), m2(shape.mid);
    const auto row_stride = static_cast<std::ptrdiff_t>(shape.mid * shape.inner);
    const auto mid_stride = static_cast<std::ptrdiff_t>(shape.inner);

    simdnorm::NormArgs<float> norm;
    norm.x = x.data, norm.y = y.data, norm.outer = shape.outer, norm.mid = shape.mid, norm.inner = shape.inner;
    norm.x_outer_stride = norm.y_outer_stride = row_stride, norm.x_mid_stride = norm.y_mid_stride = mid_stride;
    norm.weight = weight_on ? weight : nullptr, norm.bias = bias_on ? bias : nullptr, norm.stream_output = stream;
    simdnorm::BatchStatsArgs<float> stats;
    stats.x = x.data, stats.outer = shape.outer, stats.mid = shape.mid, stats.inner = shape.inner;
    stats.x_outer_stride = row_stride, stats.x_mid_stride = mid_stride, stats.mean = mean.data(), stats.m2 = m2.data();
    simdnorm::ChannelAffineArgs<float> affine;
    affine.x = x.data, affine.y = y.data, affine.outer = shape.outer, affine.mid = shape.mid, affine.inner = shape.inner;
    affine.x_outer_stride = affine.y_outer_stride = row_stride, affine.x_mid_stride = affine.y_mid_stride = mid_stride;
    affine.center = center.data(), affine.scale = weight, affine.offset = bias, affine.stream_output = stream;
    simdnorm::BatchNormTrainArgs<float> train;
    train.x = x.data, train.y = y.data, train.outer = shape.outer, train.mid = shape.mid, train.inner = shape.inner;
    train.x_outer_stride = train.y_outer_stride = row_stride, train.x_mid_stride = train.y_mid_stride = mid_stride;
    train.weight = norm.weight, train.bias = norm.bias, train.mean = mean.data(), train.m2 = m2.data();
    train.stream_output = stream;

    simdnorm::NormArgs<float> norm_sides[2] = {norm, norm};
    norm_sides[0].interleave_wide_rows = wide_rows[0];
    norm_sides[1].interleave_wide_rows = wide_rows[1];

    Kernel kernels[2];
    const void* args[2] = {nullptr, nullptr};  // A's and B's (they differ only by --wide-rows)
    auto both = [&](const void* a) { args[0] = args[1] = a; };
    if (op == "layer_norm" || op == "rms_norm") {
        kernels[0] = op == "layer_norm" ? kab_a_layer_norm : kab_a_rms_norm;
        kernels[1] = op == "layer_norm" ? kab_b_layer_norm : kab_b_rms_norm;
        args[0] = &norm_sides[0], args[1] = &norm_sides[1];
    } else if (op == "batch_stats") {
        kernels[0] = kab_a_batch_stats, kernels[1] = kab_b_batch_stats, both(&stats);
    } else if (op == "channel_affine") {
        kernels[0] = kab_a_channel_affine, kernels[1] = kab_b_channel_affine, both(&affine);
    } else if (op == "batch_norm_train") {
        if (shape.inner == 1) {
            std::fprintf(stderr, "batch_norm_train is the channels-first kernel: give NxCxHxW\n");
            return 2;
        }
        kernels[0] = kab_a_batch_norm_train, kernels[1] = kab_b_batch_norm_train, both(&train);
    } else {
        std::fprintf(stderr, "unknown op %s\n", op.c_str());
        return 2;
    }
    if ((op == "layer_norm" || op == "rms_norm") && shape.inner != 1) {
        std::fprintf(stderr, "%s takes rows: give RxF\n", op.c_str());
        return 2;
    }

    // About 1 ms of calls per block; A first in even blocks, B first in odd ones.
    const std::size_t calls = std::max<std::size_t>(20, 1000000 / std::max<std::size_t>(n, 1));
    std::vector<double> times[2], ratios;
    for (std::size_t block = 0; block < blocks; ++block) {
        double block_time[2];
        for (int turn = 0; turn < 2; ++turn) {
            const int k = (block % 2 == 0) ? turn : 1 - turn;
            const auto start = std::chrono::steady_clock::now();
            for (std::size_t c = 0; c < calls; ++c) kernels[k](args[k]);
            block_time[k] = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() /
                            static_cast<double>(calls);
            times[k].push_back(block_time[k]);
        }
        ratios.push_back(block_time[1] / block_time[0]);
    }
    std::printf("%-16s %-12s A %9.3f us (min %9.3f)  B %9.3f us (min %9.3f)  B/A %.3f [q25 %.3f, q75 %.3f]\n",
                op.c_str(), argv[2], median(times[0]), *std::min_element(times[0].begin(), times[0].end()),
                median(times[1]), *std::min_element(times[1].begin(), times[1].end()), median(ratios),
                quantile(ratios, 0.25), quantile(ratios, 0.75));
    return 0;
}
