#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <chrono>

namespace tierguard::clock {

/// std::chrono::system_clock as a clock policy: wall time, meaningful across restarts
/// (what an expiry written to disk needs), but it can jump. Stateless; thread-safe.
struct system {
    using time_point = std::chrono::system_clock::time_point;
    using duration = std::chrono::system_clock::duration;

    [[nodiscard]] time_point now() const noexcept { return std::chrono::system_clock::now(); }
};

}  // namespace tierguard::clock
