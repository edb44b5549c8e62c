#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <chrono>

namespace tierguard::clock {

/// std::chrono::steady_clock as a clock policy: monotonic, unaffected by wall-clock
/// changes. The default for in-memory TTLs. Stateless; thread-safe.
struct steady {
    using time_point = std::chrono::steady_clock::time_point;
    using duration = std::chrono::steady_clock::duration;

    [[nodiscard]] time_point now() const noexcept { return std::chrono::steady_clock::now(); }
};

}  // namespace tierguard::clock
