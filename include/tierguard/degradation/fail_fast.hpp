#pragma once

#include <tierguard/degradation/concept.hpp>
#include <tierguard/result.hpp>

#include <cstddef>

namespace tierguard::degradation {

/// While the storage tier is down every operation that needs it fails at once with
/// errc::circuit_open and changes nothing; memory hits are still served. For callers
/// that must know, on each call, that the cache did not take a write.
struct fail_fast {
    static constexpr degraded_mode mode = degraded_mode::fail_fast;

    /// No settings.
    struct config {};

    [[nodiscard]] static result<void> validate(const config&) { return {}; }

    fail_fast() = default;
    explicit fail_fast(const config&) noexcept {}

    /// The memory budget is not changed.
    [[nodiscard]] std::size_t degraded_budget(std::size_t normal) const noexcept { return normal; }
};

static_assert(degradation_policy<fail_fast>);

}  // namespace tierguard::degradation
