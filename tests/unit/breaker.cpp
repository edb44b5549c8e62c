// The breaker policies, driven by a manual clock: every transition happens at an exact
// instant, and no test sleeps.
#include "support/test_framework.hpp"

#include <tierguard/breaker/concept.hpp>
#include <tierguard/breaker/consecutive_failures.hpp>
#include <tierguard/breaker/none.hpp>
#include <tierguard/breaker/rolling_window.hpp>
#include <tierguard/clock/manual.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using tierguard::breaker_state;
using tierguard::errc;
using manual = tierguard::clock::manual;
using consecutive = tierguard::breaker::consecutive_failures<manual>;
using rolling = tierguard::breaker::rolling_window<manual>;

static_assert(tierguard::breaker_policy<consecutive>);
static_assert(tierguard::breaker_policy<rolling>);
static_assert(tierguard::breaker_policy<tierguard::breaker::none>);
static_assert(tierguard::breaker_policy<tierguard::breaker::consecutive_failures<>>);
static_assert(tierguard::breaker_policy<tierguard::breaker::rolling_window<>>);
static_assert(std::is_same_v<tierguard::breaker::consecutive_failures<>::clock_type, tierguard::clock::steady>);
static_assert(std::is_constructible_v<tierguard::breaker::none, const tierguard::breaker::none::config&, manual>);

namespace {

// A breaker whose allow() may throw does not model the concept.
struct throwing_allow {
    using clock_type = manual;
    struct config {};
    throwing_allow(const config&, manual) {}
    static tierguard::result<void> validate(const config&) { return {}; }
    bool allow() { return true; }
    void on_success() noexcept {}
    void on_failure(errc) noexcept {}
    breaker_state state() const noexcept { return breaker_state::closed; }
    tierguard::breaker_snapshot snapshot() const { return {}; }
    void force_open() noexcept {}
    void force_closed() noexcept {}
    void reset() noexcept {}
};
static_assert(!tierguard::breaker_policy<throwing_allow>);
// Nor does a type without a clock or settings to be built from.
static_assert(!tierguard::breaker_policy<int>);
static_assert(!tierguard::breaker_policy<manual>);

// Reports failures until the breaker opens; returns how many it took.
template <class B>
int trip(B& b, errc code = errc::io_error) {
    int n = 0;
    while (b.state() != breaker_state::open && n < 1000) {
        REQUIRE(b.allow());
        b.on_failure(code);
        ++n;
    }
    REQUIRE(b.state() == breaker_state::open);
    return n;
}

// Calls allow() until it admits a call (at most `limit` tries); returns whether it did.
template <class B>
bool admit(B& b, int limit = 1000) {
    for (int i = 0; i < limit; ++i)
        if (b.allow()) return true;
    return false;
}

template <class B>
B make(const manual& clock) {
    return B(typename B::config{}, clock);
}

}  // namespace

TEST_CASE("breaker: which error codes count as failures") {
    using tierguard::counts_as_failure;
    CHECK(counts_as_failure(errc::io_error));
    CHECK(counts_as_failure(errc::disk_full));
    CHECK(counts_as_failure(errc::permission_denied));
    CHECK(counts_as_failure(errc::timeout));
    CHECK(counts_as_failure(errc::locked));
    CHECK_FALSE(counts_as_failure(errc::miss));
    CHECK_FALSE(counts_as_failure(errc::expired));
    CHECK_FALSE(counts_as_failure(errc::corrupted));
    CHECK_FALSE(counts_as_failure(errc::version_mismatch));
    CHECK_FALSE(counts_as_failure(errc::circuit_open));
    CHECK_FALSE(counts_as_failure(errc::too_large));
    CHECK_FALSE(counts_as_failure(errc::invalid_argument));
    CHECK_FALSE(counts_as_failure(errc::serialization_failed));
    CHECK_FALSE(counts_as_failure(errc::loader_failed));
    CHECK(tierguard::to_string(breaker_state::half_open) == "half_open");
}

TEST_CASE("breaker: the documented defaults") {
    const consecutive::config c;
    CHECK(c.failure_threshold == 5);
    CHECK(c.recovery_time == 60s);
    CHECK(c.max_recovery_time == 5min);
    CHECK(c.test_requests == 3);
    CHECK(c.corruption_threshold == 3);
    const rolling::config r;
    CHECK(r.failure_threshold == 0.5);
    CHECK(r.minimum_calls == 10);
    CHECK(r.window == 60s);
    CHECK(r.bucket == 1s);
    CHECK(r.timeout == 60s);
    CHECK(r.max_timeout == 5min);
    CHECK(r.recovery_factor == 0.1);
    CHECK(r.success_threshold == 3);
    CHECK(r.corruption_threshold == 3);
    CHECK(consecutive::validate(c));
    CHECK(rolling::validate(r));
}

TEST_CASE("consecutive_failures: opens after failure_threshold consecutive counted failures") {
    manual clock;
    consecutive b({.failure_threshold = 5}, clock);
    for (int i = 0; i < 4; ++i) {
        REQUIRE(b.allow());
        b.on_failure(errc::io_error);
    }
    CHECK(b.state() == breaker_state::closed);
    CHECK(b.snapshot().consecutive_failures == 4);

    REQUIRE(b.allow());
    b.on_success();
    CHECK(b.snapshot().consecutive_failures == 0);

    for (int i = 0; i < 4; ++i) b.on_failure(errc::disk_full);
    CHECK(b.state() == breaker_state::closed);
    b.on_failure(errc::timeout);
    CHECK(b.state() == breaker_state::open);
    CHECK_FALSE(b.allow());
    CHECK_FALSE(b.allow());

    const auto s = b.snapshot();
    CHECK(s.state == breaker_state::open);
    CHECK(s.opens == 1);
    CHECK(s.state_changes == 1);
    CHECK(s.consecutive_failures == 5);
    CHECK(s.failures == 9);
    CHECK(s.successes == 1);
    CHECK(s.admitted == 5);
    CHECK(s.rejected == 2);
    CHECK(s.open_period == 60s);
    CHECK(s.until_half_open == 60s);
    CHECK(s.window_calls == 10);
    CHECK(s.failure_rate == 9.0 / 10.0);
}

TEST_CASE("consecutive_failures: half-open after recovery_time, exactly test_requests probes, all succeed -> closed") {
    manual clock;
    consecutive b({.failure_threshold = 2, .recovery_time = 60s, .test_requests = 3}, clock);
    trip(b);
    clock.advance(60s - 1ns);
    CHECK(b.state() == breaker_state::open);
    CHECK_FALSE(b.allow());
    clock.advance(1ns);
    CHECK(b.state() == breaker_state::half_open);

    CHECK(b.allow());
    CHECK(b.allow());
    CHECK(b.allow());
    CHECK_FALSE(b.allow());
    CHECK_FALSE(b.allow());

    b.on_success();
    b.on_success();
    CHECK(b.state() == breaker_state::half_open);
    b.on_success();
    CHECK(b.state() == breaker_state::closed);
    CHECK(b.allow());

    const auto s = b.snapshot();
    CHECK(s.state_changes == 3);  // closed -> open -> half_open -> closed
    CHECK(s.opens == 1);
    CHECK(s.open_period == 60s);
    CHECK(s.window_calls == 0);  // closing starts the rate window over
}

TEST_CASE("consecutive_failures: the half-open transition is dated when the open period ended") {
    manual clock;
    consecutive b({.failure_threshold = 1, .recovery_time = 60s}, clock);
    trip(b);
    clock.advance(20s);
    CHECK(b.snapshot().time_in_state == 20s);
    CHECK(b.snapshot().until_half_open == 40s);
    clock.advance(70s);
    const auto s = b.snapshot();
    CHECK(s.state == breaker_state::half_open);
    CHECK(s.time_in_state == 30s);
    CHECK(s.until_half_open == 0s);
}

TEST_CASE("consecutive_failures: a failed probe reopens; the open period doubles up to max_recovery_time") {
    manual clock;
    consecutive b({.failure_threshold = 1, .recovery_time = 60s, .max_recovery_time = 5min, .test_requests = 2}, clock);
    trip(b);
    const std::vector<std::chrono::nanoseconds> periods{60s, 120s, 240s, 300s, 300s};
    for (const auto period : periods) {
        CAPTURE(period.count());
        REQUIRE(b.state() == breaker_state::open);
        CHECK(b.snapshot().open_period == period);
        clock.advance(period - 1ns);
        CHECK_FALSE(b.allow());
        clock.advance(1ns);
        REQUIRE(b.allow());
        b.on_success();  // one probe succeeding is not enough: all test_requests must
        REQUIRE(b.allow());
        b.on_failure(errc::io_error);
    }
    const auto opened = b.snapshot();
    CHECK(opened.opens == 6);
    CHECK(opened.state_changes == 11);

    clock.advance(300s);
    REQUIRE(b.allow());
    REQUIRE(b.allow());
    b.on_success();
    b.on_success();
    REQUIRE(b.state() == breaker_state::closed);
    CHECK(b.snapshot().open_period == 60s);
    trip(b);
    CHECK(b.snapshot().until_half_open == 60s);
}

TEST_CASE("consecutive_failures: probe slots: an ignored result frees one, unreported ones are reissued") {
    manual clock;
    consecutive b({.failure_threshold = 1, .recovery_time = 60s, .test_requests = 2}, clock);
    trip(b);
    clock.advance(60s);
    REQUIRE(b.allow());
    REQUIRE(b.allow());
    CHECK_FALSE(b.allow());
    b.on_failure(errc::corrupted);  // one bad entry: neither success nor failure
    CHECK(b.state() == breaker_state::half_open);
    CHECK(b.allow());
    CHECK_FALSE(b.allow());

    // Nobody reports the probes: after recovery_time they are presumed lost.
    clock.advance(60s - 1ns);
    CHECK_FALSE(b.allow());
    clock.advance(1ns);
    CHECK(b.allow());
    CHECK(b.allow());
    CHECK_FALSE(b.allow());
    b.on_success();
    b.on_success();
    CHECK(b.state() == breaker_state::closed);
}

TEST_CASE("consecutive_failures: results reported while open change no state") {
    manual clock;
    consecutive b({.failure_threshold = 1, .recovery_time = 60s}, clock);
    trip(b);
    clock.advance(30s);
    b.on_failure(errc::io_error);  // a call admitted before the breaker opened
    b.on_success();
    const auto s = b.snapshot();
    CHECK(s.state == breaker_state::open);
    CHECK(s.until_half_open == 30s);
    CHECK(s.state_changes == 1);
    CHECK(s.failures == 2);
    CHECK(s.recent_failures.size() == 2);
}

TEMPLATE_TEST_CASE("breaker: codes that do not count are successes", "", consecutive, rolling) {
    manual clock;
    auto b = make<TestType>(clock);
    for (const errc code : {errc::miss, errc::expired, errc::version_mismatch, errc::too_large, errc::invalid_argument,
                            errc::serialization_failed, errc::loader_failed, errc::circuit_open}) {
        for (int i = 0; i < 50; ++i) {
            REQUIRE(b.allow());
            b.on_failure(code);
        }
    }
    auto s = b.snapshot();
    CHECK(s.state == breaker_state::closed);
    CHECK(s.successes == 400);
    CHECK(s.failures == 0);
    CHECK(s.recent_failures.empty());
    CHECK(s.state_changes == 0);

    // A miss ends a run of counted failures, as a success does.
    for (int i = 0; i < 4; ++i) b.on_failure(errc::io_error);
    CHECK(b.snapshot().consecutive_failures == 4);
    b.on_failure(errc::miss);
    CHECK(b.snapshot().consecutive_failures == 0);
}

TEST_CASE("consecutive_failures: a single corrupted result does not trip it, a run does") {
    manual clock;
    consecutive b({.failure_threshold = 5, .corruption_threshold = 3}, clock);
    b.on_failure(errc::corrupted);
    b.on_failure(errc::corrupted);
    b.on_success();  // ends the run
    b.on_failure(errc::corrupted);
    b.on_failure(errc::corrupted);
    b.on_failure(errc::miss);  // so does any other result
    auto s = b.snapshot();
    CHECK(s.state == breaker_state::closed);
    CHECK(s.failures == 0);
    CHECK(s.ignored == 4);
    CHECK(s.consecutive_failures == 0);
    CHECK(s.recent_failures.size() == 4);  // corrupted results are kept in the history

    b.on_failure(errc::corrupted);
    b.on_failure(errc::corrupted);
    b.on_failure(errc::io_error);  // a counted failure ends the run too
    b.on_failure(errc::corrupted);
    s = b.snapshot();
    CHECK(s.failures == 1);
    CHECK(s.ignored == 7);
    b.on_success();

    // A run: the 3rd consecutive corrupted result and each one after it count, so with
    // failure_threshold 5 the 7th opens the breaker.
    for (int i = 1; i <= 6; ++i) b.on_failure(errc::corrupted);
    s = b.snapshot();
    CHECK(s.state == breaker_state::closed);
    CHECK(s.failures == 5);  // 1 + 4
    CHECK(s.consecutive_failures == 4);
    b.on_failure(errc::corrupted);
    CHECK(b.state() == breaker_state::open);
}

TEST_CASE("consecutive_failures: an ignored corrupted result does not end a run of counted failures") {
    manual clock;
    consecutive b({.failure_threshold = 5}, clock);
    for (int i = 0; i < 4; ++i) b.on_failure(errc::io_error);
    b.on_failure(errc::corrupted);
    CHECK(b.state() == breaker_state::closed);
    b.on_failure(errc::io_error);
    CHECK(b.state() == breaker_state::open);
}

TEST_CASE("breaker: corruption_threshold 1 counts every corrupted result") {
    manual clock;
    consecutive b({.failure_threshold = 2, .corruption_threshold = 1}, clock);
    b.on_failure(errc::corrupted);
    CHECK(b.state() == breaker_state::closed);
    b.on_failure(errc::corrupted);
    CHECK(b.state() == breaker_state::open);
}

TEST_CASE("rolling_window: minimum_calls must be reached before it may open") {
    manual clock;
    rolling b({.failure_threshold = 0.5, .minimum_calls = 10}, clock);
    for (int i = 0; i < 9; ++i) {
        REQUIRE(b.allow());
        b.on_failure(errc::io_error);
    }
    auto s = b.snapshot();
    CHECK(s.state == breaker_state::closed);
    CHECK(s.failure_rate == 1.0);
    CHECK(s.window_calls == 9);
    REQUIRE(b.allow());
    b.on_failure(errc::io_error);
    s = b.snapshot();
    CHECK(s.state == breaker_state::open);
    CHECK(s.window_calls == 10);
    CHECK(s.opens == 1);
    CHECK_FALSE(b.allow());
}

TEST_CASE("rolling_window: opens when the failure rate reaches failure_threshold, not below") {
    manual clock;
    rolling b({.failure_threshold = 0.5, .minimum_calls = 10}, clock);
    for (int i = 0; i < 6; ++i) b.on_success();
    for (int i = 0; i < 5; ++i) b.on_failure(errc::io_error);  // 5 of 11
    CHECK(b.state() == breaker_state::closed);
    CHECK(b.snapshot().failure_rate == 5.0 / 11.0);
    b.on_failure(errc::io_error);  // 6 of 12
    CHECK(b.state() == breaker_state::open);
}

TEST_CASE("rolling_window: the window forgets old results as the clock advances") {
    manual clock;
    rolling b({.minimum_calls = 10, .window = 60s, .bucket = 1s}, clock);
    for (int i = 0; i < 5; ++i) b.on_failure(errc::io_error);
    clock.advance(30s);
    for (int i = 0; i < 4; ++i) b.on_failure(errc::io_error);
    clock.advance(29s);
    CHECK(b.snapshot().window_calls == 9);  // the first five are 59 s old: still in
    clock.advance(1s);
    auto s = b.snapshot();
    CHECK(s.window_calls == 4);  // now 60 s old: out
    CHECK(s.window_failures == 4);
    for (int i = 0; i < 5; ++i) b.on_failure(errc::io_error);
    CHECK(b.state() == breaker_state::closed);  // 9 in the window, not 14
    b.on_failure(errc::io_error);
    CHECK(b.state() == breaker_state::open);

    clock.advance(1h);
    s = b.snapshot();
    CHECK(s.window_calls == 0);
    CHECK(s.failure_rate == 0.0);
}

TEST_CASE("rolling_window: a result from before the window (the clock stepped back) is dropped") {
    manual clock;
    rolling b({.minimum_calls = 10, .window = 60s, .bucket = 1s}, clock);
    b.on_failure(errc::io_error);
    clock.advance(-30s);  // still inside the window: counted
    b.on_failure(errc::io_error);
    CHECK(b.snapshot().window_calls == 2);
    clock.advance(-90s);  // two minutes before the newest result: dropped
    b.on_failure(errc::io_error);
    CHECK(b.snapshot().time_in_state == 0s);  // not negative
    clock.advance(120s);
    const auto s = b.snapshot();
    CHECK(s.window_calls == 2);
    CHECK(s.failures == 3);  // still counted as a failure, only not in the rate
}

TEST_CASE("rolling_window: half-open admits a recovery_factor share of calls, deterministically") {
    for (const auto& [factor, expected] :
         std::vector<std::pair<double, int>>{{0.1, 10}, {0.25, 25}, {0.3, 30}, {1.0, 100}}) {
        CAPTURE(factor);
        manual clock;
        rolling b({.minimum_calls = 1, .timeout = 60s, .recovery_factor = factor}, clock);
        trip(b);
        clock.advance(60s);
        REQUIRE(b.state() == breaker_state::half_open);
        int admitted = 0;
        std::vector<int> which;
        for (int call = 1; call <= 100; ++call) {
            if (b.allow()) {
                ++admitted;
                which.push_back(call);
            }
        }
        CHECK(admitted == expected);
        REQUIRE_FALSE(which.empty());
        CHECK(which.front() == 1);  // the first call of a half-open period is a probe
        if (factor == 0.1) CHECK(which == std::vector<int>{1, 11, 21, 31, 41, 51, 61, 71, 81, 91});
        if (factor == 0.3)
            CHECK(std::vector<int>(which.begin(), which.begin() + 5) == std::vector<int>{1, 5, 8, 11, 15});
        CHECK(b.snapshot().rejected == static_cast<std::uint64_t>(100 - expected));
    }
}

TEST_CASE("rolling_window: success_threshold consecutive successful probes close it, with an empty window") {
    manual clock;
    rolling b({.minimum_calls = 10, .timeout = 60s, .success_threshold = 3}, clock);
    trip(b);
    clock.advance(60s);
    for (int i = 0; i < 2; ++i) {
        REQUIRE(admit(b));
        b.on_success();
    }
    CHECK(b.state() == breaker_state::half_open);
    REQUIRE(admit(b));
    b.on_failure(errc::corrupted);  // ignored: neither ends nor extends the streak
    CHECK(b.state() == breaker_state::half_open);
    REQUIRE(admit(b));
    b.on_success();
    CHECK(b.state() == breaker_state::closed);
    auto s = b.snapshot();
    CHECK(s.window_calls == 0);
    CHECK(s.state_changes == 3);

    // The failures that opened it are gone: one failure does not reopen it.
    b.on_failure(errc::io_error);
    CHECK(b.state() == breaker_state::closed);
}

TEST_CASE("rolling_window: a failed probe reopens; the open period doubles up to max_timeout") {
    manual clock;
    rolling b({.minimum_calls = 1, .timeout = 60s, .max_timeout = 5min, .success_threshold = 3}, clock);
    trip(b);
    for (const auto period : std::vector<std::chrono::nanoseconds>{60s, 120s, 240s, 300s, 300s}) {
        CAPTURE(period.count());
        REQUIRE(b.state() == breaker_state::open);
        CHECK(b.snapshot().open_period == period);
        clock.advance(period - 1ns);
        CHECK_FALSE(b.allow());
        clock.advance(1ns);
        REQUIRE(admit(b));
        b.on_success();
        REQUIRE(admit(b));
        b.on_success();
        REQUIRE(admit(b));
        b.on_failure(errc::permission_denied);  // the streak of two does not save it
    }
    CHECK(b.snapshot().opens == 6);

    clock.advance(300s);
    for (int i = 0; i < 3; ++i) {
        REQUIRE(admit(b));
        b.on_success();
    }
    REQUIRE(b.state() == breaker_state::closed);
    CHECK(b.snapshot().open_period == 60s);
}

TEST_CASE("rolling_window: corrupted results short of a run stay out of the window") {
    manual clock;
    rolling b({.minimum_calls = 10, .corruption_threshold = 3}, clock);
    for (int i = 0; i < 20; ++i) {
        b.on_failure(errc::corrupted);
        b.on_success();
    }
    auto s = b.snapshot();
    CHECK(s.state == breaker_state::closed);
    CHECK(s.window_calls == 20);
    CHECK(s.window_failures == 0);
    CHECK(s.ignored == 20);

    // A run of corrupted results is a failing tier: the 3rd onwards count.
    for (int i = 0; i < 21; ++i) b.on_failure(errc::corrupted);
    s = b.snapshot();
    CHECK(s.window_failures == 19);
    CHECK(s.state == breaker_state::closed);  // 19 of 39
    b.on_failure(errc::corrupted);
    CHECK(b.state() == breaker_state::open);  // 20 of 40
}

TEMPLATE_TEST_CASE("breaker: force_open, force_closed and reset", "", consecutive, rolling) {
    manual clock;
    auto b = make<TestType>(clock);

    SECTION("force_open holds it open past any open period, until force_closed") {
        b.force_open();
        CHECK(b.state() == breaker_state::open);
        CHECK_FALSE(b.allow());
        clock.advance(24h);
        CHECK(b.state() == breaker_state::open);
        CHECK_FALSE(b.allow());
        auto s = b.snapshot();
        CHECK(s.forced_open);
        CHECK(s.until_half_open == 0s);
        CHECK(s.opens == 1);
        CHECK(s.state_changes == 1);

        b.force_closed();
        CHECK(b.state() == breaker_state::closed);
        CHECK(b.allow());
        s = b.snapshot();
        CHECK_FALSE(s.forced_open);
        CHECK(s.state_changes == 2);
        CHECK(s.rejected == 2);  // counters are kept
        CHECK(s.admitted == 1);
    }
    SECTION("force_open on an open breaker keeps it open past its period") {
        trip(b);
        b.force_open();
        CHECK(b.snapshot().state_changes == 1);
        clock.advance(24h);
        CHECK(b.state() == breaker_state::open);
    }
    SECTION("force_closed from half-open, and failure counting starts over") {
        const int to_open = trip(b);
        clock.advance(24h);
        REQUIRE(b.state() == breaker_state::half_open);
        b.force_closed();
        CHECK(b.state() == breaker_state::closed);
        for (int i = 0; i + 1 < to_open; ++i) b.on_failure(errc::io_error);
        CHECK(b.state() == breaker_state::closed);
        b.on_failure(errc::io_error);
        CHECK(b.state() == breaker_state::open);
        CHECK(b.snapshot().open_period == b.snapshot().until_half_open);
    }
    SECTION("force_closed right after opening: failure counting starts over") {
        const int to_open = trip(b);
        b.force_closed();
        CHECK(b.snapshot().window_calls == 0);
        for (int i = 0; i + 1 < to_open; ++i) b.on_failure(errc::io_error);
        CHECK(b.state() == breaker_state::closed);
    }
    SECTION("reset returns to a new breaker's state") {
        trip(b);
        (void)b.allow();
        b.force_open();
        clock.advance(5s);
        b.reset();
        const auto s = b.snapshot();
        CHECK(s.state == breaker_state::closed);
        CHECK_FALSE(s.forced_open);
        CHECK(s.state_changes == 0);
        CHECK(s.opens == 0);
        CHECK(s.admitted == 0);
        CHECK(s.rejected == 0);
        CHECK(s.successes == 0);
        CHECK(s.failures == 0);
        CHECK(s.consecutive_failures == 0);
        CHECK(s.window_calls == 0);
        CHECK(s.recent_failures.empty());
        CHECK(s.time_in_state == 0s);
        CHECK(b.allow());
    }
}

TEMPLATE_TEST_CASE("breaker: the snapshot keeps the last 50 failures, newest last", "", consecutive, rolling) {
    manual clock;
    auto b = make<TestType>(clock);
    const auto start = tierguard::detail::since_epoch(clock.now());
    for (int i = 1; i <= 51; ++i) {
        clock.advance(1s);
        b.on_failure(i == 1 ? errc::disk_full : i == 51 ? errc::timeout : errc::io_error);
        b.on_failure(errc::miss);  // not a failure: never kept
    }
    const auto s = b.snapshot();
    REQUIRE(s.recent_failures.size() == tierguard::breaker_failure_history);
    REQUIRE(s.recent_failures.size() == 50);
    CHECK(s.recent_failures.front().code == errc::io_error);  // the disk_full was the 51st oldest: dropped
    CHECK(s.recent_failures.front().at == start + 2s);
    CHECK(s.recent_failures.back().code == errc::timeout);
    CHECK(s.recent_failures.back().at == start + 51s);
    CHECK(s.recent_failures.back().at == s.now);
    for (std::size_t i = 1; i < s.recent_failures.size(); ++i)
        CHECK(s.recent_failures[i].at == s.recent_failures[i - 1].at + 1s);
    CHECK(s.failures == 51);
    CHECK(s.successes == 51);
}

TEST_CASE("breaker: validate refuses bad settings and names them; the constructor throws") {
    using cc = consecutive::config;
    const std::vector<std::pair<cc, std::string>> bad_consecutive{
        {cc{.failure_threshold = 0}, "failure_threshold"},
        {cc{.recovery_time = 0s}, "recovery_time"},
        {cc{.recovery_time = -1s}, "recovery_time"},
        {cc{.max_recovery_time = -1s}, "max_recovery_time"},
        {cc{.recovery_time = 10min, .max_recovery_time = 5min}, "max_recovery_time"},
        {cc{.test_requests = 0}, "test_requests"},
        {cc{.corruption_threshold = 0}, "corruption_threshold"},
    };
    for (const auto& [cfg, name] : bad_consecutive) {
        CAPTURE(name);
        const auto ok = consecutive::validate(cfg);
        REQUIRE_FALSE(ok);
        CHECK(ok.error().code() == errc::invalid_argument);
        CHECK(ok.error().message().rfind("[tierguard.invalid_argument]", 0) == 0);
        CHECK(ok.error().context().find("config." + name) != std::string::npos);
        CHECK_THROWS_AS(consecutive(cfg, manual()), std::invalid_argument);
    }

    using rc = rolling::config;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const std::vector<std::pair<rc, std::string>> bad_rolling{
        {rc{.failure_threshold = 0.0}, "failure_threshold"},
        {rc{.failure_threshold = -0.5}, "failure_threshold"},
        {rc{.failure_threshold = 1.5}, "failure_threshold"},
        {rc{.failure_threshold = nan}, "failure_threshold"},
        {rc{.minimum_calls = 0}, "minimum_calls"},
        {rc{.window = 0s}, "window"},
        {rc{.window = -60s}, "window"},
        {rc{.bucket = 0s}, "bucket"},
        {rc{.window = 90s, .bucket = 7s}, "bucket"},
        {rc{.window = 2h, .bucket = 1s}, "bucket"},
        {rc{.timeout = -1s}, "timeout"},
        {rc{.timeout = 10min, .max_timeout = 5min}, "max_timeout"},
        {rc{.recovery_factor = 0.0}, "recovery_factor"},
        {rc{.recovery_factor = 1.01}, "recovery_factor"},
        {rc{.success_threshold = 0}, "success_threshold"},
        {rc{.corruption_threshold = 0}, "corruption_threshold"},
    };
    for (const auto& [cfg, name] : bad_rolling) {
        CAPTURE(name);
        const auto ok = rolling::validate(cfg);
        REQUIRE_FALSE(ok);
        CHECK(ok.error().code() == errc::invalid_argument);
        CHECK(ok.error().context().find("config." + name) != std::string::npos);
        CHECK_THROWS_AS(rolling(cfg, manual()), std::invalid_argument);
    }

    // The edges of the ranges are fine.
    CHECK(rolling::validate({.failure_threshold = 1.0, .recovery_factor = 1.0}));
    CHECK(rolling::validate({.window = 1h, .bucket = 1s}));
    CHECK(consecutive::validate({.failure_threshold = 1, .recovery_time = 1ns, .max_recovery_time = 1ns}));
}

TEST_CASE("breaker::none never rejects") {
    manual clock;
    tierguard::breaker::none b(tierguard::breaker::none::config{}, clock);
    for (int i = 0; i < 1000; ++i) {
        REQUIRE(b.allow());
        b.on_failure(errc::io_error);
    }
    b.force_open();
    CHECK(b.allow());
    CHECK(b.state() == breaker_state::closed);
    const auto s = b.snapshot();
    CHECK(s.state == breaker_state::closed);
    CHECK(s.recent_failures.empty());
    CHECK(tierguard::breaker::none::validate({}));
}
