#pragma once

#include <tierguard/breaker/concept.hpp>
#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/steady.hpp>
#include <tierguard/detail/breaker_books.hpp>
#include <tierguard/detail/spin_mutex.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

namespace tierguard::breaker {

/// A breaker that opens after a run of consecutive failures (seed 000's breaker, with
/// seed 001's exponential backoff).
///
/// - closed: every call is allowed. failure_threshold consecutive counted failures open
///   it; a success (or a result that does not count, see counts_as_failure) ends the run.
/// - open: every call is rejected for the open period, then it goes half-open. The first
///   open period is recovery_time; each failed probe doubles it, up to max_recovery_time;
///   closing starts over at recovery_time.
/// - half_open: exactly test_requests calls are allowed as probes. When all of them
///   succeed it closes; the first that fails opens it again. A probe that comes back as
///   an ignored result (a corrupted entry short of a run) frees its slot for another probe.
///   Probes never reported for recovery_time are presumed lost and their slots reissued,
///   so a caller that forgets to report cannot wedge the breaker half-open.
///
/// The snapshot's failure rate covers the last 60 s (buckets of 1 s) since the last close;
/// it is for metrics only and does not drive this breaker.
///
/// Thread-safety: every member function may be called concurrently; each takes a short
/// internal lock. Neither copyable nor movable: the cache keeps it in place.
template <class Clock = tierguard::clock::steady>
class consecutive_failures {
public:
    static_assert(clock_policy<Clock>,
                  "tierguard::breaker::consecutive_failures: Clock does not model tierguard::clock_policy "
                  "(it needs time_point, duration and a noexcept const now()); see docs/POLICIES.md");

    using clock_type = Clock;

    /// Run-time settings; validate() says which one is out of range.
    struct config {
        /// Consecutive counted failures that open the breaker (seed 000: 5).
        std::uint32_t failure_threshold = 5;
        /// First open period, and the one after every close (seed 000: 60 s).
        std::chrono::nanoseconds recovery_time = std::chrono::seconds{60};
        /// Cap of the doubling open period. Seed 001 retries a failed disk every 5 minutes
        /// with exponential backoff, and seed 000 alerts on a breaker open for more than
        /// 5 minutes: with the defaults the periods run 60 s, 120 s, 240 s, 300 s, 300 s...
        std::chrono::nanoseconds max_recovery_time = std::chrono::minutes{5};
        /// Probes allowed while half-open; all must succeed to close (seed 000: 3).
        std::uint32_t test_requests = 3;
        /// The corrupted result that makes a run this long, and each one after it in the run,
        /// counts as a failure (see counts_as_failure). 3, so that one bad file met by a
        /// couple of concurrent readers before it is quarantined is not taken for a bad disk.
        std::uint32_t corruption_threshold = 3;
    };

    /// Checks a configuration: errc::invalid_argument naming the first bad setting.
    [[nodiscard]] static result<void> validate(const config& cfg) {
        if (auto ok = detail::check_count(cfg.failure_threshold, "consecutive_failures config.failure_threshold"); !ok)
            return ok;
        if (auto ok = detail::check_duration(cfg.recovery_time, "consecutive_failures config.recovery_time"); !ok)
            return ok;
        if (auto ok = detail::check_duration(cfg.max_recovery_time, "consecutive_failures config.max_recovery_time");
            !ok)
            return ok;
        if (cfg.max_recovery_time < cfg.recovery_time)
            return detail::bad_breaker_config(
                "consecutive_failures config.max_recovery_time (" + std::to_string(cfg.max_recovery_time.count()) +
                " ns) is below config.recovery_time (" + std::to_string(cfg.recovery_time.count()) + " ns)");
        if (auto ok = detail::check_count(cfg.test_requests, "consecutive_failures config.test_requests"); !ok)
            return ok;
        if (auto ok = detail::check_count(cfg.corruption_threshold, "consecutive_failures config.corruption_threshold");
            !ok)
            return ok;
        return {};
    }

    /// A closed breaker with the default settings.
    consecutive_failures() : consecutive_failures(config{}) {}

    /// A closed breaker; throws std::invalid_argument (what() is the failure's message)
    /// if validate(cfg) fails.
    explicit consecutive_failures(const config& cfg, Clock clock = Clock())
        : m_cfg(checked(cfg)),
          m_clock(std::move(clock)),
          m_books(cfg.corruption_threshold, cfg.recovery_time, cfg.max_recovery_time, now()),
          m_rate(std::chrono::seconds{1}, 60) {}

    consecutive_failures(const consecutive_failures&) = delete;
    consecutive_failures& operator=(const consecutive_failures&) = delete;

    /// True if a call may be made now: always while closed, never while open, and for at
    /// most test_requests probes while half-open. Each true must be followed by one
    /// on_success() or on_failure(). Thread-safe.
    [[nodiscard]] bool allow() noexcept {
        std::lock_guard lock(m_mutex);
        const auto t = now();
        refresh(t);
        bool allowed = false;
        switch (m_books.state()) {
            case breaker_state::closed: allowed = true; break;
            case breaker_state::open: allowed = false; break;
            case breaker_state::half_open: allowed = admit_probe(t); break;
        }
        m_books.count_allow(allowed);
        return allowed;
    }

    /// An allowed call succeeded: ends a failure run; counts a probe. Thread-safe.
    void on_success() noexcept {
        std::lock_guard lock(m_mutex);
        const auto t = now();
        refresh(t);
        m_books.count_success();
        succeeded(t);
    }

    /// An allowed call failed with `code`; counted as counts_as_failure() and the
    /// corrupted-run rule say. Thread-safe.
    void on_failure(errc code) noexcept {
        std::lock_guard lock(m_mutex);
        const auto t = now();
        refresh(t);
        switch (m_books.classify(code, t)) {
            case detail::breaker_outcome::success: succeeded(t); break;
            case detail::breaker_outcome::ignored:
                if (m_books.state() == breaker_state::half_open && m_probes_admitted > m_probe_successes) {
                    --m_probes_admitted;
                    m_last_probe_activity = t;
                }
                break;
            case detail::breaker_outcome::failure: failed(t); break;
        }
    }

    /// The state, after the open -> half-open transition if the open period is over. Thread-safe.
    [[nodiscard]] breaker_state state() const noexcept {
        std::lock_guard lock(m_mutex);
        refresh(now());
        return m_books.state();
    }

    /// State and counters; allocates the failure list. Thread-safe.
    [[nodiscard]] breaker_snapshot snapshot() const {
        breaker_snapshot s;
        std::lock_guard lock(m_mutex);
        const auto t = now();
        refresh(t);
        m_books.fill(s, t);
        const auto totals = m_rate.sum(t);
        s.window_calls = totals.calls;
        s.window_failures = totals.failures;
        s.failure_rate =
            totals.calls == 0 ? 0.0 : static_cast<double>(totals.failures) / static_cast<double>(totals.calls);
        return s;
    }

    /// Opens now and stays open, rejecting every call, until force_closed() or reset().
    /// Thread-safe.
    void force_open() noexcept {
        std::lock_guard lock(m_mutex);
        m_books.force_open(now());
    }

    /// Closes now and resumes normal operation: the failure run, the backoff and the rate
    /// window start over; counters and the failure history are kept. Thread-safe.
    void force_closed() noexcept {
        std::lock_guard lock(m_mutex);
        m_books.force_closed(now());
        m_rate.clear();
    }

    /// Back to a new breaker's state: closed, every counter zero, no history. Thread-safe.
    void reset() noexcept {
        std::lock_guard lock(m_mutex);
        const auto t = now();
        m_books.reset(t);
        m_rate.clear();
        m_probes_admitted = m_probe_successes = 0;
        m_last_probe_activity = t;
    }

    /// The settings it was built with.
    [[nodiscard]] const config& settings() const noexcept { return m_cfg; }

private:
    static const config& checked(const config& cfg) {
        if (auto ok = validate(cfg); !ok) throw std::invalid_argument(ok.error().message());
        return cfg;
    }

    [[nodiscard]] std::chrono::nanoseconds now() const noexcept { return detail::since_epoch(m_clock.now()); }

    void refresh(std::chrono::nanoseconds t) const noexcept {
        if (!m_books.refresh(t)) return;
        m_probes_admitted = m_probe_successes = 0;
        m_last_probe_activity = t;
    }

    bool admit_probe(std::chrono::nanoseconds t) noexcept {
        if (m_probes_admitted >= m_cfg.test_requests) {
            if (t - m_last_probe_activity < m_cfg.recovery_time) return false;
            m_probes_admitted = m_probe_successes;
        }
        ++m_probes_admitted;
        m_last_probe_activity = t;
        return true;
    }

    void succeeded(std::chrono::nanoseconds t) noexcept {
        m_rate.record(t, false);
        if (m_books.state() != breaker_state::half_open) return;
        ++m_probe_successes;
        m_last_probe_activity = t;
        if (m_probe_successes >= m_cfg.test_requests) close(t);
    }

    void failed(std::chrono::nanoseconds t) noexcept {
        m_rate.record(t, true);
        switch (m_books.state()) {
            case breaker_state::closed:
                if (m_books.consecutive_failures() >= m_cfg.failure_threshold) m_books.trip(t);
                break;
            case breaker_state::half_open: m_books.reopen(t); break;
            case breaker_state::open: break;
        }
    }

    void close(std::chrono::nanoseconds t) noexcept {
        m_books.close(t);
        m_rate.clear();
    }

    config m_cfg;
    Clock m_clock;
    // mutable: state() and snapshot() make the time-driven open -> half-open transition they report.
    mutable detail::spin_mutex m_mutex;
    mutable detail::breaker_books m_books;
    mutable detail::rate_window m_rate;
    mutable std::uint32_t m_probes_admitted = 0;
    mutable std::uint32_t m_probe_successes = 0;
    mutable std::chrono::nanoseconds m_last_probe_activity{};
};

}  // namespace tierguard::breaker
