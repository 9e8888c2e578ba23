// The output block cache; see output_buffers.hpp.
#include "output_buffers.hpp"

#include "simdnorm/simdnorm.hpp"

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>

#if defined(_WIN32)
#include <malloc.h>
#elif defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sys/mman.h>
#endif

namespace simdnorm::bindings {
namespace {

// Capacities are whole 2 MiB units aligned to 2 MiB (the x86-64 / arm64 huge page): such blocks can
// be backed by transparent huge pages, and one rounding step makes near sizes share blocks.
constexpr std::size_t kBlockGranule = std::size_t(2) << 20;
constexpr const char* kCapsuleName = "simdnorm.output_block";

struct Block {
    void* data;
    std::size_t capacity;
};

void* allocate_block(std::size_t capacity) {
    void* data = nullptr;
#if defined(_WIN32)
    data = _aligned_malloc(capacity, kBlockGranule);
#else
    if (posix_memalign(&data, kBlockGranule, capacity) != 0) return nullptr;
#endif
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // THP runs in "madvise" mode on many distributions: without the hint a fresh block takes one
    // fault per 4 KiB page (first call on a fresh 32 MiB output 17 ms instead of 3 ms; reused blocks
    // gain 5-15 % from fewer TLB misses). Failure only loses the speed-up.
    if (data) madvise(data, capacity, MADV_HUGEPAGE);
#endif
    return data;
}

void free_block(Block* block) noexcept {
#if defined(_WIN32)
    _aligned_free(block->data);
#else
    std::free(block->data);
#endif
    delete block;
}

// Unused blocks, oldest first, and the limit on their total capacity. release() runs from capsule
// destructors (any thread, interpreter shutdown): like acquire() it makes no Python calls and
// cannot throw.
class BlockCache {
public:
    explicit BlockCache(std::size_t limit) : limit_(limit) {}

    // The smallest unused block of >= bytes and <= 2x bytes, or a new one; null if out of memory.
    Block* acquire(std::size_t bytes) noexcept {
        {
            std::lock_guard<std::mutex> lock(*mutex_);
            std::size_t best = free_.size();
            for (std::size_t i = 0; i < free_.size(); ++i) {
                const std::size_t capacity = free_[i]->capacity;
                if (capacity >= bytes && capacity / 2 <= bytes &&
                    (best == free_.size() || capacity < free_[best]->capacity)) {
                    best = i;
                }
            }
            if (best != free_.size()) {
                Block* block = free_[best];
                free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
                free_bytes_ -= block->capacity;
                return block;
            }
        }
        const std::size_t capacity = (bytes + kBlockGranule - 1) / kBlockGranule * kBlockGranule;
        Block* block = new (std::nothrow) Block{nullptr, capacity};
        if (!block) return nullptr;
        block->data = allocate_block(capacity);
        if (!block->data) {
            delete block;
            return nullptr;
        }
        return block;
    }

    // Keeps the block for reuse, then frees the oldest blocks beyond the limit.
    void release(Block* block) noexcept {
        std::vector<Block*> evicted;
        {
            std::lock_guard<std::mutex> lock(*mutex_);
            try {
                evicted.reserve(free_.size() + 1);
                free_.push_back(block);
                free_bytes_ += block->capacity;
            } catch (const std::bad_alloc&) {
                free_block(block);
                return;
            }
            evict_over(limit_.load(std::memory_order_relaxed), &evicted);
        }
        for (Block* b : evicted) free_block(b);  // outside the lock: free() may unmap
    }

    std::size_t set_limit(std::size_t limit) {
        std::vector<Block*> evicted;
        std::size_t previous;
        {
            std::lock_guard<std::mutex> lock(*mutex_);
            evicted.reserve(free_.size());
            previous = limit_.exchange(limit, std::memory_order_relaxed);
            evict_over(limit, &evicted);
        }
        for (Block* b : evicted) free_block(b);
        return previous;
    }

    std::size_t limit() const noexcept { return limit_.load(std::memory_order_relaxed); }

    OutputCacheStats stats() {
        std::lock_guard<std::mutex> lock(*mutex_);
        return {free_.size(), free_bytes_};
    }

#if defined(__unix__) || defined(__APPLE__)
    // fork() copies the cache (blocks included: the child may reuse them) but not the threads: the
    // parent's lock is held across fork so the copied list is consistent, and the child gets a new one.
    void lock_for_fork() { mutex_->lock(); }
    void unlock_after_fork_parent() { mutex_->unlock(); }
    void reset_after_fork_child() { mutex_ = new std::mutex(); }  // the copy stays locked; leaked
#endif

private:
    // evicted has room for every block (reserved by the caller), so push_back cannot throw.
    void evict_over(std::size_t limit, std::vector<Block*>* evicted) noexcept {
        std::size_t drop = 0;
        while (drop < free_.size() && free_bytes_ > limit) {
            free_bytes_ -= free_[drop]->capacity;
            evicted->push_back(free_[drop++]);
        }
        free_.erase(free_.begin(), free_.begin() + static_cast<std::ptrdiff_t>(drop));
    }

    std::mutex* mutex_ = new std::mutex();  // a pointer so the fork child can replace it
    std::vector<Block*> free_;
    std::size_t free_bytes_ = 0;
    std::atomic<std::size_t> limit_;
};

// Leaked on purpose: capsule destructors may run during interpreter shutdown, after C++ statics
// would have been destroyed.
BlockCache& cache() {
    static BlockCache* const instance = [] {
        auto* c = new BlockCache(kDefaultOutputCacheBytes);
#if defined(__unix__) || defined(__APPLE__)
        pthread_atfork([] { cache().lock_for_fork(); }, [] { cache().unlock_after_fork_parent(); },
                       [] { cache().reset_after_fork_child(); });
#endif
        return c;
    }();
    return *instance;
}

void release_capsule(PyObject* capsule) {
    // Only our capsules carry this destructor, so the name matches and no error is raised.
    cache().release(static_cast<Block*>(PyCapsule_GetPointer(capsule, kCapsuleName)));
}

}  // namespace

py::array new_output(const py::dtype& dtype, int ndim, const py::ssize_t* shape, std::size_t nbytes,
                     const void* input) {
    if (nbytes >= kCachedOutputMinBytes) return large_output(dtype, {shape, shape + ndim}, {}, nbytes, input);
    auto& api = py::detail::npy_api::get();
    // From kLineAlignedOutputMinBytes on: over the first 64-byte boundary of a NumPy byte buffer one
    // line longer, which becomes the array's base. Below it NumPy allocates (data null).
    py::object owner;
    void* data = nullptr;
    int flags = 0;
    if (nbytes >= kLineAlignedOutputMinBytes) {
        constexpr std::size_t kLine = 64;
        const py::ssize_t raw_bytes = static_cast<py::ssize_t>(nbytes + kLine - 1);
        PyObject* raw = api.PyArray_NewFromDescr_(api.PyArray_Type_, api.PyArray_DescrFromType_(api.NPY_UBYTE_), 1,
                                                  &raw_bytes, nullptr, nullptr, 0, nullptr);
        if (!raw) throw py::error_already_set();
        owner = py::reinterpret_steal<py::object>(raw);
        const auto start = reinterpret_cast<std::uintptr_t>(py::detail::array_proxy(raw)->data);
        data = reinterpret_cast<void*>((start + kLine - 1) / kLine * kLine);
        flags = api.NPY_ARRAY_C_CONTIGUOUS_ | api.NPY_ARRAY_WRITEABLE_;
    }
    PyObject* array = api.PyArray_NewFromDescr_(api.PyArray_Type_, dtype.inc_ref().ptr(), ndim, shape,
                                                /*strides=*/nullptr, data, flags, nullptr);
    if (!array) throw py::error_already_set();  // NewFromDescr stole the dtype reference either way
    py::array result = py::reinterpret_steal<py::array>(array);
    if (owner && api.PyArray_SetBaseObject_(array, owner.release().ptr()) != 0) throw py::error_already_set();  // steals
    return result;
}

py::array large_output(const py::dtype& dtype, const std::vector<py::ssize_t>& shape,
                       const std::vector<py::ssize_t>& byte_strides, std::size_t nbytes, const void* input) {
    constexpr std::size_t kPage = 4096, kShift = kPage / 2, kLine = 64;  // output_buffers.hpp says why
    const std::size_t input_offset = input ? reinterpret_cast<std::uintptr_t>(input) % kPage : 16;
    // Blocks are page-aligned. Streamed outputs with rows of at least kCoAlignedRowBytes keep x's
    // offset within its cache line, so the kernels' per-row store alignment aligns the loads of x
    // as well (LayerNorm 8192x1024: 1.49-1.68 -> 1.37-1.40 ms). Everything else starts on a line:
    // short streamed rows would each begin and end with a partial line of ordinary stores
    // (BatchNorm eval 32x56x56x64, 256-byte rows: 0.79-0.81 -> 1.73-1.76 ms co-aligned), and
    // cached outputs measured as well or better there (BatchNorm train NHWC 58-59 vs 61-62 us).
    constexpr std::size_t kCoAlignedRowBytes = 1024;
    const std::size_t row_bytes = shape.empty() ? 0 : static_cast<std::size_t>(shape.back()) * dtype.itemsize();
    std::size_t offset = (input_offset + kShift) % kPage;
    if (nbytes < simdnorm::stream_output_bytes() || row_bytes < kCoAlignedRowBytes) offset = offset / kLine * kLine;
    Block* block = cache().limit() > 0 ? cache().acquire(nbytes + offset) : nullptr;
    if (!block) return py::array(dtype, shape, byte_strides);  // disabled, or out of memory: NumPy decides
    PyObject* capsule = PyCapsule_New(block, kCapsuleName, &release_capsule);
    if (!capsule) {
        cache().release(block);
        throw py::error_already_set();
    }
    // pybind11 marks an array over foreign memory writeable and sets the capsule as its base.
    return py::array(dtype, shape, byte_strides, static_cast<char*>(block->data) + offset,
                     py::reinterpret_steal<py::object>(capsule));
}

std::size_t set_output_cache_limit(std::size_t nbytes) { return cache().set_limit(nbytes); }

std::size_t get_output_cache_limit() { return cache().limit(); }

OutputCacheStats output_cache_stats() { return cache().stats(); }

std::string init_output_cache_from_env() {
    const char* text = std::getenv("SIMDNORM_OUTPUT_CACHE_BYTES");
    if (text == nullptr || *text == '\0') return {};
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text, &end, 10);
    // strtoull accepts a sign and leading blanks ("-1" wraps around): require digits only.
    bool digits_only = true;
    for (const char* p = text; *p; ++p) digits_only = digits_only && *p >= '0' && *p <= '9';
    if (!digits_only || *end != '\0' || errno == ERANGE) {
        return std::string("SIMDNORM_OUTPUT_CACHE_BYTES='") + text +
               "' is not a byte count (a non-negative integer, 0 disables the cache); using the default " +
               std::to_string(kDefaultOutputCacheBytes) + " (256 MiB)";
    }
    set_output_cache_limit(static_cast<std::size_t>(value));
    return {};
}

}  // namespace simdnorm::bindings
