#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <chrono>
#include <concepts>

namespace tierguard {

/// A time source for TTLs, breaker timeouts and backoff.
///
/// Every time-based decision in tierguard reads the time through this policy, so a
/// test that swaps in clock::manual decides exactly when an entry expires.
///
/// @code
/// struct my_policies : tierguard::memory_defaults {
///     using clock = tierguard::clock::manual;
/// };
/// @endcode
template <class C>
concept clock_policy = std::copy_constructible<C> && requires(const C& c) {
    typename C::time_point;                               // a std::chrono::time_point
    typename C::duration;                                 // the time_point's duration
    { c.now() } -> std::same_as<typename C::time_point>;  // current time; monotonic for TTLs
    requires noexcept(c.now());                           // reading the time never throws
};

}  // namespace tierguard
