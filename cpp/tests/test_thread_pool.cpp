// parallel_for (cpp/src/thread_pool.hpp, internal): every task runs exactly once for any task and
// thread count, including more threads than tasks, shares taken over from other threads, and calls
// from several threads at once (the pool is busy: the others run serially), and helpers that went
// to sleep between calls waking for the next one.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "support.hpp"
#include "thread_pool.hpp"

namespace {

std::vector<int> run_counts(std::size_t tasks, bool slow_first_share) {
    std::vector<std::atomic<int>> runs(tasks);
    simdnorm::parallel_for(tasks, [&](std::size_t i) {
        // The caller's share slow: the helpers finish theirs and take its tasks over.
        if (slow_first_share && i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        runs[i].fetch_add(1);
    });
    std::vector<int> counts(tasks);
    for (std::size_t i = 0; i < tasks; ++i) counts[i] = runs[i].load();
    return counts;
}

}  // namespace

TEST_SUITE("thread_pool") {
    TEST_CASE("every task runs exactly once") {
        simdnorm_test::StateGuard guard;
        for (int threads : {1, 2, 3, 5, 8}) {
            simdnorm::set_num_threads(threads);
            for (std::size_t tasks : {0, 1, 2, 3, 7, 13, 64, 1000}) {
                for (bool slow : {false, true}) {
                    if (slow && tasks == 0) continue;
                    INFO("threads " << threads << ", tasks " << tasks << ", slow first share " << slow);
                    const std::vector<int> counts = run_counts(tasks, slow);
                    CHECK(counts == std::vector<int>(tasks, 1));
                }
            }
        }
    }

    TEST_CASE("concurrent callers each get all their tasks run once") {
        simdnorm_test::StateGuard guard;
        simdnorm::set_num_threads(2);
        std::atomic<int> failures{0};
        std::vector<std::thread> callers;
        for (int c = 0; c < 4; ++c) {
            callers.emplace_back([&failures] {
                for (int round = 0; round < 200; ++round) {
                    if (run_counts(37, false) != std::vector<int>(37, 1)) failures.fetch_add(1);
                }
            });
        }
        for (std::thread& t : callers) t.join();
        CHECK(failures.load() == 0);
    }

    TEST_CASE("helpers asleep between calls wake for the next call") {
        simdnorm_test::StateGuard guard;
        simdnorm::set_num_threads(2);
        run_counts(2, false);  // the helper exists
        for (int round = 0; round < 3; ++round) {
            // Past the helper's spin (thread_pool.cpp, kSpinIterations: well under a millisecond to
            // a few), so it waits on the condition variable and only the caller's wake-up brings it.
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
            const std::thread::id caller = std::this_thread::get_id();
            std::atomic<int> helped{0};
            simdnorm::parallel_for(2, [&](std::size_t i) {
                if (std::this_thread::get_id() != caller) helped.fetch_add(1);
                if (i != 0) return;
                // The caller's task waits for the helper to take the other one (10 s at most, so a
                // helper that never wakes fails the check instead of hanging the suite).
                const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                while (helped.load() == 0 && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
            });
            INFO("round " << round);
            // Usually 1; 2 when the woken helper preempted the caller and took its task as well.
            CHECK(helped.load() >= 1);
        }
    }
}
