#pragma once

#include <tierguard/breaker/concept.hpp>
#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/steady.hpp>
#include <tierguard/detail/breaker_books.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace tierguard::breaker {

/// A breaker that opens on the failure rate over a rolling time window, and recovers
/// gradually by letting a fraction of calls through (seed 002's breaker, with seed 001's
/// exponential backoff).
///
/// - closed: every call is allowed. Results go into a window of the last `window` of
///   time, kept in buckets of `bucket`; results older than that are forgotten. When a
///   counted failure is reported, the window holds at least minimum_calls results and the
///   failure rate is at or above failure_threshold, it opens.
/// - open: every call is rejected for the open period, then it goes half-open. The first
///   open period is `timeout`; each failed probe doubles it, up to max_timeout; closing
///   starts over at `timeout`.
/// - half_open: a recovery_factor fraction of calls is allowed as probes, deterministically:
///   the first call, then one in every 1/recovery_factor (0.1: calls 1, 11, 21, ...; 0.3:
///   calls 1, 5, 8, 11, 15, ...); the rest are rejected. success_threshold consecutive
///   successful probes close it, with an empty window; a failed probe opens it again.
///
/// Thread-safety: every member function may be called concurrently; each takes a short
/// internal lock (allow and on_* are O(1) amortized; snapshot is O(window / bucket)). Neither
/// copyable nor movable: the cache keeps it in place.
template <class Clock = tierguard::clock::steady>
class rolling_window : public detail::breaker_machine<rolling_window<Clock>, Clock> {
public:
    static_assert(clock_policy<Clock>,
                  "tierguard::breaker::rolling_window: Clock does not model tierguard::clock_policy "
                  "(it needs time_point, duration and a noexcept const now()); see docs/POLICIES.md");

    using clock_type = Clock;

    /// The most buckets a window may be cut into (bounds memory and snapshot cost).
    static constexpr std::size_t max_buckets = 3600;

    /// Run-time settings; validate() says which one is out of range.
    struct config {
        /// Failure rate, in (0, 1], at or above which the breaker opens.
        double failure_threshold = 0.5;
        /// Results the window must hold before the rate may open the breaker: two failures
        /// out of three calls after a quiet night are not an outage.
        std::uint32_t minimum_calls = 10;
        /// Length of the rolling window. Seed 002 uses 300 s; 60 s is chosen so that a tier
        /// that dies under steady traffic is cut off in about half a minute, not two and a half.
        std::chrono::nanoseconds window = std::chrono::seconds{60};
        /// Granularity of the window: results age out one bucket at a time. window must be
        /// a whole number of buckets, at most max_buckets.
        std::chrono::nanoseconds bucket = std::chrono::seconds{1};
        /// First open period, and the one after every close (seed 002: 60 s).
        std::chrono::nanoseconds timeout = std::chrono::seconds{60};
        /// Cap of the doubling open period (seed 001: retry every 5 minutes, with backoff).
        std::chrono::nanoseconds max_timeout = std::chrono::minutes{5};
        /// Fraction of calls, in (0, 1], allowed as probes while half-open. Seed 002 defaults
        /// to 0.5 and recommends 0.1 to 0.8; 0.1 keeps a recovering disk from being flooded.
        double recovery_factor = 0.1;
        /// Consecutive successful probes that close the breaker (seed 002: 3).
        std::uint32_t success_threshold = 3;
        /// The corrupted result that makes a run this long, and each one after it in the run,
        /// counts as a failure (see counts_as_failure).
        std::uint32_t corruption_threshold = 3;
    };

    /// Checks a configuration: errc::invalid_argument naming the first bad setting.
    [[nodiscard]] static result<void> validate(const config& cfg) {
        if (auto ok = detail::check_fraction(cfg.failure_threshold, "rolling_window config.failure_threshold"); !ok)
            return ok;
        if (auto ok = detail::check_count(cfg.minimum_calls, "rolling_window config.minimum_calls"); !ok) return ok;
        if (auto ok = detail::check_duration(cfg.window, "rolling_window config.window"); !ok) return ok;
        if (auto ok = detail::check_duration(cfg.bucket, "rolling_window config.bucket"); !ok) return ok;
        if (cfg.window % cfg.bucket != std::chrono::nanoseconds::zero())
            return detail::bad_breaker_config("rolling_window config.window (" + std::to_string(cfg.window.count()) +
                                              " ns) is not a whole number of config.bucket (" +
                                              std::to_string(cfg.bucket.count()) + " ns)");
        if (static_cast<std::uint64_t>(cfg.window / cfg.bucket) > max_buckets)
            return detail::bad_breaker_config("rolling_window config.window / config.bucket is " +
                                              std::to_string(cfg.window / cfg.bucket) + " buckets; at most " +
                                              std::to_string(max_buckets) + " are supported");
        if (auto ok = detail::check_duration(cfg.timeout, "rolling_window config.timeout"); !ok) return ok;
        if (auto ok = detail::check_duration(cfg.max_timeout, "rolling_window config.max_timeout"); !ok) return ok;
        if (cfg.max_timeout < cfg.timeout)
            return detail::bad_breaker_config(
                "rolling_window config.max_timeout (" + std::to_string(cfg.max_timeout.count()) +
                " ns) is below config.timeout (" + std::to_string(cfg.timeout.count()) + " ns)");
        if (auto ok = detail::check_fraction(cfg.recovery_factor, "rolling_window config.recovery_factor"); !ok)
            return ok;
        if (auto ok = detail::check_count(cfg.success_threshold, "rolling_window config.success_threshold"); !ok)
            return ok;
        if (auto ok = detail::check_count(cfg.corruption_threshold, "rolling_window config.corruption_threshold"); !ok)
            return ok;
        return {};
    }

    /// A closed breaker with the default settings.
    rolling_window() : rolling_window(config{}) {}

    /// A closed breaker; throws std::invalid_argument (what() is the failure's message)
    /// if validate(cfg) fails.
    explicit rolling_window(const config& cfg, Clock clock = Clock())
        : rolling_window(checked(cfg), std::move(clock), validated{}) {}

    /// The settings it was built with.
    [[nodiscard]] const config& settings() const noexcept { return m_cfg; }

private:
    using machine = detail::breaker_machine<rolling_window<Clock>, Clock>;
    friend machine;

    struct validated {};

    rolling_window(const config& cfg, Clock clock, validated)
        : machine(std::move(clock), cfg.corruption_threshold, cfg.timeout, cfg.max_timeout, cfg.bucket,
                  static_cast<std::size_t>(cfg.window / cfg.bucket)),
          m_cfg(cfg),
          m_probe_share(share_of(cfg.recovery_factor)) {}

    // recovery_factor in millionths, so that admission is exact integer arithmetic.
    static constexpr std::uint64_t share_scale = 1'000'000;

    static std::uint64_t share_of(double fraction) noexcept {
        const auto share = static_cast<std::uint64_t>(std::llround(fraction * static_cast<double>(share_scale)));
        return share == 0 ? 1 : share;
    }

    static const config& checked(const config& cfg) {
        if (auto ok = validate(cfg); !ok) throw std::invalid_argument(ok.error().message());
        return cfg;
    }

    // A recovery_factor share of calls, deterministically.
    bool admit_probe(std::chrono::nanoseconds) noexcept {
        m_probe_credit += m_probe_share;
        if (m_probe_credit < share_scale) return false;
        m_probe_credit -= share_scale;
        return true;
    }

    void half_opened(std::chrono::nanoseconds) const noexcept {
        // Credit for exactly one call, so the first call of a half-open period is a probe.
        m_probe_credit = share_scale - m_probe_share;
        m_probe_successes = 0;
    }

    void probe_ignored(std::chrono::nanoseconds) noexcept {}

    bool probe_succeeded(std::chrono::nanoseconds) noexcept { return ++m_probe_successes >= m_cfg.success_threshold; }

    bool should_trip(std::chrono::nanoseconds t) const noexcept {
        const auto totals = this->window(t);
        return totals.calls >= m_cfg.minimum_calls &&
               static_cast<double>(totals.failures) >= m_cfg.failure_threshold * static_cast<double>(totals.calls);
    }

    void cleared(std::chrono::nanoseconds) noexcept {
        m_probe_credit = 0;
        m_probe_successes = 0;
    }

    config m_cfg;
    std::uint64_t m_probe_share;
    mutable std::uint64_t m_probe_credit = 0;
    mutable std::uint32_t m_probe_successes = 0;
};

}  // namespace tierguard::breaker
