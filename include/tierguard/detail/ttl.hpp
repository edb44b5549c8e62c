#pragma once

#include <tierguard/result.hpp>

#include <chrono>
#include <concepts>
#include <limits>
#include <ratio>
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

// Saturating time arithmetic: every addition or subtraction of times in tierguard goes
// through these, so a clock at either end of its range (or before the epoch) clamps
// instead of overflowing. TimePoint::max() stands for "never" (no_expiry).

/// a + b clamped to Int's range (C++26 std::add_sat).
template <std::signed_integral Int>
[[nodiscard]] constexpr Int add_sat(Int a, Int b) noexcept {
    if (b > 0 && a > std::numeric_limits<Int>::max() - b) return std::numeric_limits<Int>::max();
    if (b < 0 && a < std::numeric_limits<Int>::min() - b) return std::numeric_limits<Int>::min();
    return static_cast<Int>(a + b);
}

/// a - b clamped to Int's range (C++26 std::sub_sat).
template <std::signed_integral Int>
[[nodiscard]] constexpr Int sub_sat(Int a, Int b) noexcept {
    if (b < 0 && a > std::numeric_limits<Int>::max() + b) return std::numeric_limits<Int>::max();
    if (b > 0 && a < std::numeric_limits<Int>::min() + b) return std::numeric_limits<Int>::min();
    return static_cast<Int>(a - b);
}

/// `d` in To's units, rounded up, clamped to To's range.
template <class To, class Rep, class Period>
[[nodiscard]] constexpr To ceil_sat(std::chrono::duration<Rep, Period> d) noexcept {
    if constexpr (std::ratio_less_v<Period, typename To::period>) {  // to coarser units: no overflow
        return std::chrono::ceil<To>(d);
    } else {
        using limit_type = std::chrono::duration<typename To::rep, Period>;
        constexpr limit_type limit = std::chrono::duration_cast<limit_type>(To::max());
        if (d > limit) return To::max();
        if (d < -limit) return To::min();
        return std::chrono::duration_cast<To>(d);
    }
}

/// a + b clamped to the duration's range.
template <class Rep, class Period>
[[nodiscard]] constexpr std::chrono::duration<Rep, Period> add_sat(std::chrono::duration<Rep, Period> a,
                                                                   std::chrono::duration<Rep, Period> b) noexcept {
    return std::chrono::duration<Rep, Period>(add_sat(a.count(), b.count()));
}

/// a - b clamped to the duration's range.
template <class Rep, class Period>
[[nodiscard]] constexpr std::chrono::duration<Rep, Period> sub_sat(std::chrono::duration<Rep, Period> a,
                                                                   std::chrono::duration<Rep, Period> b) noexcept {
    return std::chrono::duration<Rep, Period>(sub_sat(a.count(), b.count()));
}

/// `t + d` clamped to the time point's range; d is rounded up to t's tick.
template <class Clock, class Dur, class Rep, class Period>
[[nodiscard]] constexpr std::chrono::time_point<Clock, Dur> add_sat(std::chrono::time_point<Clock, Dur> t,
                                                                    std::chrono::duration<Rep, Period> d) noexcept {
    return std::chrono::time_point<Clock, Dur>(add_sat(t.time_since_epoch(), ceil_sat<Dur>(d)));
}

/// `t - d` clamped to the time point's range; d is rounded up to t's tick.
template <class Clock, class Dur, class Rep, class Period>
[[nodiscard]] constexpr std::chrono::time_point<Clock, Dur> sub_sat(std::chrono::time_point<Clock, Dur> t,
                                                                    std::chrono::duration<Rep, Period> d) noexcept {
    return std::chrono::time_point<Clock, Dur>(sub_sat(t.time_since_epoch(), ceil_sat<Dur>(d)));
}

/// `later - earlier` in nanoseconds, clamped to their range.
template <class TimePoint>
[[nodiscard]] constexpr std::chrono::nanoseconds elapsed_sat(TimePoint earlier, TimePoint later) noexcept {
    return ceil_sat<std::chrono::nanoseconds>(sub_sat(later.time_since_epoch(), earlier.time_since_epoch()));
}

/// When an entry stored at `now` with `ttl` expires: TimePoint::max() (never) for
/// no_expiry and for expiries past the clock's range.
template <class TimePoint>
[[nodiscard]] constexpr TimePoint expiry_after(TimePoint now, std::chrono::nanoseconds ttl) noexcept {
    if (ttl == no_expiry) return TimePoint::max();
    return add_sat(now, ttl);
}

/// True if an entry expiring at `expiry` is expired at `now`; an entry that never expires
/// (TimePoint::max()) is not, even with the clock at TimePoint::max().
template <class TimePoint>
[[nodiscard]] constexpr bool expired(TimePoint expiry, TimePoint now) noexcept {
    return expiry != TimePoint::max() && expiry <= now;
}

}  // namespace detail
}  // namespace tierguard
