#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <atomic>
#include <chrono>
#include <memory>

namespace tierguard::clock {

/// A clock that only moves when told to: makes TTL, breaker and backoff tests exact.
///
/// Copies share one time line, so a test keeps a copy and advances the clock that a
/// cache holds. Its time_point is system_clock's, starting at the given instant
/// (default: the Unix epoch plus one day, so that "time zero" is never mistaken for
/// "unset"). Thread-safe: now(), advance() and set() may race freely.
class manual {
public:
    using time_point = std::chrono::system_clock::time_point;
    using duration = std::chrono::system_clock::duration;

    explicit manual(time_point start = time_point{std::chrono::hours{24}})
        : m_now(std::make_shared<std::atomic<duration::rep>>(start.time_since_epoch().count())) {}

    [[nodiscard]] time_point now() const noexcept {
        return time_point{duration{m_now->load(std::memory_order_acquire)}};
    }

    /// Moves time forward (a negative step moves it back, to test clock skew).
    void advance(duration step) noexcept { m_now->fetch_add(step.count(), std::memory_order_acq_rel); }

    void set(time_point t) noexcept { m_now->store(t.time_since_epoch().count(), std::memory_order_release); }

private:
    std::shared_ptr<std::atomic<duration::rep>> m_now;
};

}  // namespace tierguard::clock
