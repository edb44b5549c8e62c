// Four threads observe into one histogram while a fifth takes snapshots. Run under
// ThreadSanitizer in CI; the totals after joining must be exact.
#include "support/test_framework.hpp"

#include <tierguard/metrics.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

using std::chrono::nanoseconds;
using tierguard::histogram_snapshot;
using tierguard::latency_histogram;

namespace {

constexpr int worker_count = 4;
constexpr int ops_per_worker = 250000;

// Worker w's i-th latency: powers of two from 1 ns to 4.3 s, which land in every bucket.
nanoseconds latency(int w, int i) { return nanoseconds{(std::int64_t{1} << (i % 33)) + w}; }

}  // namespace

TEST_CASE("histogram: concurrent observe() loses nothing", "[metrics][concurrency]") {
    latency_histogram h;
    std::atomic<bool> done{false};
    std::atomic<int> inconsistent{0};

    std::thread reader([&] {
        std::uint64_t last = 0;
        while (!done.load(std::memory_order_acquire)) {
            const histogram_snapshot s = h.snapshot();
            std::uint64_t total = 0;
            for (const std::uint64_t c : s.counts) total += c;
            // Each counter only grows, so a later snapshot never counts less.
            if (total != s.count || s.count < last) inconsistent.fetch_add(1, std::memory_order_relaxed);
            last = s.count;
        }
    });
    std::vector<std::thread> workers;
    for (int w = 0; w < worker_count; ++w)
        workers.emplace_back([&h, w] {
            for (int i = 0; i < ops_per_worker; ++i) h.observe(latency(w, i));
        });
    for (std::thread& t : workers) t.join();
    done.store(true, std::memory_order_release);
    reader.join();

    // The same observations, made one at a time.
    latency_histogram expected;
    for (int w = 0; w < worker_count; ++w)
        for (int i = 0; i < ops_per_worker; ++i) expected.observe(latency(w, i));

    const histogram_snapshot s = h.snapshot();
    CHECK(inconsistent.load() == 0);
    CHECK(s.count == static_cast<std::uint64_t>(worker_count) * ops_per_worker);
    for (const std::uint64_t c : s.counts) CHECK(c > 0);
    CHECK(s == expected.snapshot());
}
