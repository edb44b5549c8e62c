#pragma once

#include <tierguard/breaker/concept.hpp>
#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/steady.hpp>
#include <tierguard/detail/breaker_books.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>

#include <chrono>
#include <cstdint>
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
class consecutive_failures : public detail::breaker_machine<consecutive_failures<Clock>, Clock> {
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
        : consecutive_failures(checked(cfg), std::move(clock), validated{}) {}

    /// The settings it was built with.
    [[nodiscard]] const config& settings() const noexcept { return m_cfg; }

private:
    using machine = detail::breaker_machine<consecutive_failures<Clock>, Clock>;
    friend machine;

    struct validated {};

    consecutive_failures(const config& cfg, Clock clock, validated)
        : machine(std::move(clock), cfg.corruption_threshold, cfg.recovery_time, cfg.max_recovery_time,
                  std::chrono::seconds{1}, 60),
          m_cfg(cfg),
          m_last_probe_activity(this->now()) {}

    static const config& checked(const config& cfg) {
        if (auto ok = validate(cfg); !ok) throw std::invalid_argument(ok.error().message());
        return cfg;
    }

    // At most test_requests probes at a time; probes unanswered for recovery_time are
    // presumed lost and their slots reissued.
    bool admit_probe(std::chrono::nanoseconds t) noexcept {
        if (m_probes_admitted >= m_cfg.test_requests) {
            if (detail::sub_sat(t, m_last_probe_activity) < m_cfg.recovery_time) return false;
            m_probes_admitted = m_probe_successes;
        }
        ++m_probes_admitted;
        m_last_probe_activity = t;
        return true;
    }

    void half_opened(std::chrono::nanoseconds t) const noexcept { cleared(t); }

    // An ignored result frees its probe's slot for another probe.
    void probe_ignored(std::chrono::nanoseconds t) noexcept {
        if (m_probes_admitted <= m_probe_successes) return;
        --m_probes_admitted;
        m_last_probe_activity = t;
    }

    bool probe_succeeded(std::chrono::nanoseconds t) noexcept {
        ++m_probe_successes;
        m_last_probe_activity = t;
        return m_probe_successes >= m_cfg.test_requests;
    }

    bool should_trip(std::chrono::nanoseconds) const noexcept { return this->failure_run() >= m_cfg.failure_threshold; }

    void cleared(std::chrono::nanoseconds t) const noexcept {
        m_probes_admitted = m_probe_successes = 0;
        m_last_probe_activity = t;
    }

    config m_cfg;
    mutable std::uint32_t m_probes_admitted = 0;
    mutable std::uint32_t m_probe_successes = 0;
    mutable std::chrono::nanoseconds m_last_probe_activity{};
};

}  // namespace tierguard::breaker
