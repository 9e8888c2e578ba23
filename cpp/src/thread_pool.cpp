// Thread pool behind parallel_for. Compiled with baseline flags.
#include "thread_pool.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sched.h>
#endif

#include "simdnorm/simdnorm.hpp"

namespace simdnorm {
namespace {

int default_num_threads() {
    if (const char* env = std::getenv("SIMDNORM_NUM_THREADS")) {
        const int n = std::atoi(env);
        if (n >= 1) return n;
    }
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        const int n = CPU_COUNT(&set);
        if (n >= 1) return n;
    }
#endif
    const unsigned n = std::thread::hardware_concurrency();
    return n >= 1 ? static_cast<int>(n) : 1;
}

// Workers spin briefly on the job counter before sleeping: waking a sleeping thread through the
// kernel costs tens of microseconds on virtual machines, more than a mid-sized kernel.
constexpr int kSpinIterations = 20000;  // ~50-100 µs

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// One parallel_for call. Lives on the caller's stack; helpers reach it only through `job_`.
// The tasks are cut into one contiguous share per thread, and each thread drains its own share
// before it helps with the others. Repeated calls on the same arrays then give each core the
// same rows as last time, still in its cache, while a late or descheduled thread's share is
// taken over by the others (which thread runs a task never changes its result).
struct Job {
    static constexpr std::size_t kMaxShares = 64;
    struct alignas(64) Share {
        std::atomic<std::size_t> next{0};
        std::size_t end = 0;
    };
    const std::function<void(std::size_t)>* task = nullptr;
    std::size_t shares = 1;
    Share share[kMaxShares];

    Job(const std::function<void(std::size_t)>& t, std::size_t tasks, std::size_t threads) : task(&t) {
        shares = threads < kMaxShares ? threads : kMaxShares;
        if (shares > tasks) shares = tasks;
        for (std::size_t k = 0; k < shares; ++k) {
            share[k].next.store(tasks * k / shares, std::memory_order_relaxed);
            share[k].end = tasks * (k + 1) / shares;
        }
    }

    void drain(std::size_t thread) {
        for (std::size_t k = 0; k < shares; ++k) {
            Share& s = share[(thread + k) % shares];
            for (std::size_t i = s.next.fetch_add(1); i < s.end; i = s.next.fetch_add(1)) (*task)(i);
        }
    }
};

// The caller publishes a job, wakes the helpers and works on it itself; it then waits only for
// helpers that actually entered the job (`inside_`), never for one that has not woken up yet, so
// a descheduled helper cannot stall a call whose tasks the caller already finished.
class ThreadPool {
public:
    ~ThreadPool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_.store(true);
        }
        wake_.notify_all();
        for (std::thread& worker : workers_) worker.join();
    }

    void run(std::size_t tasks, const std::function<void(std::size_t)>& task, int threads) {
        std::unique_lock<std::mutex> busy(run_mutex_, std::try_to_lock);
        const std::size_t helpers = threads > 1 ? static_cast<std::size_t>(threads - 1) : 0;
        if (!busy.owns_lock() || helpers == 0 || tasks <= 1) {
            for (std::size_t i = 0; i < tasks; ++i) task(i);
            return;
        }
        // Threads past the job's shares would only spin; a thread the system refuses leaves the
        // job to the workers that exist.
        Job job(task, tasks, ensure_workers(std::min(helpers, Job::kMaxShares - 1)) + 1);
        job_.store(&job);
        generation_.fetch_add(1);
        // Sleepers are woken under the mutex they check their predicate with; spinning helpers see
        // the generation change by themselves. Both sides are sequentially consistent (the
        // generation's add before the count's load here, the count's add before the generation's
        // load in worker_loop), so a helper that goes to sleep after this load sees the new job.
        if (sleepers_.load() != 0) {
            { std::lock_guard<std::mutex> lock(mutex_); }
            wake_.notify_all();
        }
        job.drain(0);
        job_.store(nullptr);
        for (int spin = 0; inside_.load() != 0; ++spin) {
            if (spin < kSpinIterations) {
                cpu_relax();
            } else {
                std::this_thread::yield();
            }
        }
    }

private:
    // Starts workers up to `count`; returns how many are running (fewer if one could not start).
    std::size_t ensure_workers(std::size_t count) noexcept {
        try {
            while (workers_.size() < count) {
                const std::size_t index = workers_.size() + 1;  // the caller is thread 0
                workers_.emplace_back([this, index] { worker_loop(index); });
            }
        } catch (...) {  // std::system_error (no resources) or std::bad_alloc
        }
        return std::min(workers_.size(), count);
    }

    void worker_loop(std::size_t index) {
        std::uint64_t seen = generation_.load();
        for (;;) {
            std::uint64_t generation = generation_.load();
            for (int spin = 0; generation == seen && spin < kSpinIterations; ++spin) {
                cpu_relax();
                generation = generation_.load();
            }
            if (generation == seen) {
                std::unique_lock<std::mutex> lock(mutex_);
                sleepers_.fetch_add(1);
                wake_.wait(lock, [&] { return stopping_.load() || generation_.load() != seen; });
                sleepers_.fetch_sub(1);
                if (stopping_.load()) return;
                generation = generation_.load();
            }
            seen = generation;
            inside_.fetch_add(1);  // before reading job_: see run()'s wait
            if (Job* job = job_.load()) job->drain(index);
            inside_.fetch_sub(1);
        }
    }

    // Grouped by who writes them, a cache line each: spinning helpers keep reading the generation,
    // so any other field the caller wrote in its line would cross between cores on every call. An
    // empty 2-thread call: 0.83-0.95 us with all of them in one line, 0.56-0.58 apart, 0.14-0.47
    // apart and without the mutex while no helper sleeps (run()).
    alignas(64) std::atomic<std::uint64_t> generation_{0};  // the caller's, once a call
    std::atomic<Job*> job_{nullptr};
    alignas(64) std::atomic<int> inside_{0};  // the helpers'
    alignas(64) std::mutex run_mutex_;        // the caller's: one parallel job at a time
    std::vector<std::thread> workers_;
    std::mutex mutex_;  // sleeping workers only
    std::condition_variable wake_;
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stopping_{false};
};

std::atomic<int> g_num_threads{0};
ThreadPool* g_pool = nullptr;  // leaked on purpose: joining threads at exit can deadlock
std::once_flag g_pool_once;

void reset_after_fork() {
    g_pool = new ThreadPool();  // the parent's workers do not exist in the child
}

ThreadPool& pool() {
    std::call_once(g_pool_once, [] {
        g_pool = new ThreadPool();
#if defined(__unix__) || defined(__APPLE__)
        pthread_atfork(nullptr, nullptr, &reset_after_fork);
#endif
    });
    return *g_pool;
}

}  // namespace

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("number of threads must be >= 1, got " + std::to_string(n));
    g_num_threads.store(n, std::memory_order_relaxed);
}

int get_num_threads() noexcept {
    int n = g_num_threads.load(std::memory_order_relaxed);
    if (n == 0) {
        n = default_num_threads();
        int expected = 0;
        g_num_threads.compare_exchange_strong(expected, n, std::memory_order_relaxed);
        n = g_num_threads.load(std::memory_order_relaxed);
    }
    return n;
}

void parallel_for(std::size_t tasks, const std::function<void(std::size_t)>& task) {
    const int threads = get_num_threads();
    if (threads <= 1 || tasks <= 1) {
        for (std::size_t i = 0; i < tasks; ++i) task(i);
        return;
    }
    pool().run(tasks, task, threads);
}

}  // namespace simdnorm
