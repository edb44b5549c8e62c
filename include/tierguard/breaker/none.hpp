#pragma once

#include <tierguard/breaker/concept.hpp>
#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/steady.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>

namespace tierguard::breaker {

/// No breaker: every call is allowed and it is always closed.
///
/// For tiers that must be tried every time (an in-memory test storage), or when the
/// caller has its own protection. It keeps no state, so it costs nothing per call:
/// force_open(), force_closed() and reset() do nothing, and snapshot() reports a closed
/// breaker with zero counters (the cache's own metrics still count outcomes).
/// Thread-safe: it has nothing to share.
struct none {
    /// Accepted for uniformity with the clock-driven breakers; never read.
    using clock_type = tierguard::clock::steady;

    /// No settings.
    struct config {};

    /// Always succeeds.
    [[nodiscard]] static result<void> validate(const config&) { return {}; }

    none() noexcept = default;
    explicit none(const config&) noexcept {}
    /// Built like the other breakers, from settings and the cache's clock, whatever its type.
    template <clock_policy Clock>
    none(const config&, const Clock&) noexcept {}

    /// Always true.
    [[nodiscard]] bool allow() noexcept { return true; }
    void on_success() noexcept {}
    void on_failure(errc) noexcept {}
    /// Always closed.
    [[nodiscard]] breaker_state state() const noexcept { return breaker_state::closed; }
    /// A closed breaker with zero counters and no history.
    [[nodiscard]] breaker_snapshot snapshot() const { return {}; }
    /// Does nothing: this breaker cannot open.
    void force_open() noexcept {}
    void force_closed() noexcept {}
    void reset() noexcept {}
};

}  // namespace tierguard::breaker
