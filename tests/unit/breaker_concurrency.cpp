// Many threads drive one breaker through its states. Run under ThreadSanitizer in CI: a
// data race fails the run even where the invariants below would not notice it.
#include "support/test_framework.hpp"

#include <tierguard/breaker/concept.hpp>
#include <tierguard/breaker/consecutive_failures.hpp>
#include <tierguard/breaker/rolling_window.hpp>
#include <tierguard/clock/manual.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using tierguard::breaker_state;
using tierguard::errc;
using manual = tierguard::clock::manual;
using consecutive = tierguard::breaker::consecutive_failures<manual>;
using rolling = tierguard::breaker::rolling_window<manual>;

namespace {

constexpr int worker_count = 4;
constexpr int ops_per_worker = 20000;

bool valid(breaker_state s) {
    return s == breaker_state::closed || s == breaker_state::open || s == breaker_state::half_open;
}

// What must hold in every snapshot, whatever the interleaving; an empty string if it does.
// `undisturbed`: nobody forces or resets the breaker, so its counters only grow and its
// transitions are the state machine's own.
std::string broken_invariant(const tierguard::breaker_snapshot& s, bool undisturbed) {
    if (!valid(s.state)) return "state out of range";
    if (s.opens > s.state_changes) return "more opens than state changes";
    // Without forcing, every open but the current one is followed by half-open, and every
    // close and every reopen comes from half-open.
    if (undisturbed && (s.state_changes + 1 < 2 * s.opens || s.state_changes > 3 * s.opens))
        return "state changes inconsistent with opens";
    if (undisturbed && s.successes + s.failures + s.ignored > s.admitted) return "more results than admitted calls";
    if (s.window_failures > s.window_calls) return "more failures than calls in the window";
    if (s.failure_rate < 0.0 || s.failure_rate > 1.0) return "failure rate outside [0, 1]";
    if (s.recent_failures.size() > tierguard::breaker_failure_history) return "failure history too long";
    for (std::size_t i = 1; i < s.recent_failures.size(); ++i)
        if (s.recent_failures[i].at < s.recent_failures[i - 1].at) return "failure history out of order";
    if (s.time_in_state < 0s) return "negative time in state";
    return {};
}

struct totals {
    std::atomic<std::uint64_t> allows{0};
    std::atomic<std::uint64_t> admitted{0};
    std::atomic<std::uint64_t> reports{0};
    std::atomic<std::uint64_t> bad_states{0};
};

// Phases of 1000 calls alternate between a failing tier (80% counted failures) and a
// healthy one (5%), so the breaker opens and recovers many times; each worker moves the
// shared clock by 1 s every 64 calls.
template <class B>
void work(B& breaker, manual clock, int seed, totals& t) {
    std::mt19937 rng(static_cast<std::uint32_t>(seed));
    std::uniform_int_distribution<int> percent(0, 99);
    for (int i = 0; i < ops_per_worker; ++i) {
        if (i % 64 == 0) clock.advance(1s);
        t.allows.fetch_add(1, std::memory_order_relaxed);
        if (!valid(breaker.state())) t.bad_states.fetch_add(1, std::memory_order_relaxed);
        if (!breaker.allow()) continue;
        t.admitted.fetch_add(1, std::memory_order_relaxed);
        const bool failing_phase = (i / 1000) % 2 == 0;
        const int roll = percent(rng);
        if (roll < (failing_phase ? 80 : 5)) {
            breaker.on_failure(errc::io_error);
        } else if (roll < 90) {
            breaker.on_success();
        } else if (roll < 95) {
            breaker.on_failure(errc::miss);
        } else {
            breaker.on_failure(errc::corrupted);
        }
        t.reports.fetch_add(1, std::memory_order_relaxed);
    }
}

template <class B>
void hammer(B& breaker, const manual& clock) {
    totals t;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> snapshots{0};
    std::string first_broken;
    // The checker snapshots at least once, and the workers wait for its first snapshot, so
    // on a loaded machine the checker cannot be scheduled only after the workers are done.
    std::thread checker([&] {
        do {
            const auto why = broken_invariant(breaker.snapshot(), true);
            if (!why.empty() && first_broken.empty()) first_broken = why;
            snapshots.fetch_add(1, std::memory_order_release);
        } while (!stop.load());
    });
    std::vector<std::thread> workers;
    for (int w = 0; w < worker_count; ++w)
        workers.emplace_back([&, w] {
            while (snapshots.load(std::memory_order_acquire) == 0) std::this_thread::yield();
            work(breaker, clock, w + 1, t);
        });
    for (auto& w : workers) w.join();
    stop.store(true);
    checker.join();

    CAPTURE(first_broken);
    CHECK(first_broken.empty());
    CHECK(t.bad_states.load() == 0);
    const auto s = breaker.snapshot();
    CHECK(broken_invariant(s, true).empty());
    CHECK(s.admitted + s.rejected == t.allows.load());
    CHECK(s.admitted == t.admitted.load());
    CHECK(s.successes + s.failures + s.ignored == t.reports.load());
    CHECK(s.opens >= 2);
    CHECK(s.rejected > 0);
}

}  // namespace

TEST_CASE("consecutive_failures: concurrent calls keep states and counters consistent") {
    manual clock;
    consecutive breaker({.failure_threshold = 5, .recovery_time = 10s, .max_recovery_time = 60s}, clock);
    hammer(breaker, clock);
}

TEST_CASE("rolling_window: concurrent calls keep states and counters consistent") {
    manual clock;
    rolling breaker({.minimum_calls = 20, .window = 10s, .timeout = 10s, .max_timeout = 60s, .recovery_factor = 0.5},
                    clock);
    hammer(breaker, clock);
}

TEMPLATE_TEST_CASE("breaker: force_open, force_closed and reset race safely with calls", "", consecutive, rolling) {
    manual clock;
    TestType breaker(typename TestType::config{}, clock);
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> broken{0};
    std::vector<std::thread> workers;
    totals t;
    for (int w = 0; w < worker_count; ++w) workers.emplace_back([&, w] { work(breaker, clock, w + 11, t); });
    std::thread controller([&] {
        for (int i = 0; !stop.load(); ++i) {
            switch (i % 3) {
                case 0: breaker.force_open(); break;
                case 1: breaker.force_closed(); break;
                default: breaker.reset(); break;
            }
            if (!broken_invariant(breaker.snapshot(), false).empty()) broken.fetch_add(1);
        }
    });
    for (auto& w : workers) w.join();
    stop.store(true);
    controller.join();
    CHECK(broken.load() == 0);
    CHECK(t.bad_states.load() == 0);
    breaker.force_closed();
    CHECK(breaker.state() == breaker_state::closed);
    CHECK(breaker.allow());
}
