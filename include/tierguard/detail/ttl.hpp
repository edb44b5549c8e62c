#pragma once

#include <tierguard/result.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace tierguard {

/// A TTL that never expires. A TTL of zero or less is refused with
/// errc::invalid_argument: it would mean "already expired", which is never useful and
/// often a unit mistake.
inline constexpr std::chrono::nanoseconds no_expiry = std::chrono::nanoseconds::max();

namespace detail {

/// errc::invalid_argument unless ttl is positive; `what` names the setting for the message.
[[nodiscard]] inline result<void> check_ttl(std::chrono::nanoseconds ttl, tier where, std::string_view what) {
    if (ttl > std::chrono::nanoseconds::zero()) return {};
    return fail(errc::invalid_argument, where,
                std::string(what) + " is " + std::to_string(ttl.count()) +
                    " ns; a TTL must be positive (tierguard::no_expiry never expires)");
}

/// When an entry stored at `now` with `ttl` expires: TimePoint::max() for no_expiry, and
/// saturating instead of overflowing for TTLs past the clock's range.
template <class TimePoint>
[[nodiscard]] TimePoint expiry_after(TimePoint now, std::chrono::nanoseconds ttl) noexcept {
    if (ttl == no_expiry) return TimePoint::max();
    const auto room = std::chrono::duration_cast<std::chrono::nanoseconds>(TimePoint::max() - now);
    if (ttl >= room) return TimePoint::max();
    return now + std::chrono::ceil<typename TimePoint::duration>(ttl);
}

}  // namespace detail
}  // namespace tierguard
