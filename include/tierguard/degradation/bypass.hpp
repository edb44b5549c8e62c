#pragma once

#include <tierguard/degradation/concept.hpp>
#include <tierguard/result.hpp>

#include <cstddef>

namespace tierguard::degradation {

/// Seed 002's fallback table: while the storage tier is down the cache steps aside.
/// get is a miss (errc::circuit_open), put stores nowhere, erase removes nothing; each
/// is counted in the metrics. The memory tier is left as it was.
struct bypass {
    static constexpr degraded_mode mode = degraded_mode::bypass;

    /// No settings.
    struct config {};

    [[nodiscard]] static result<void> validate(const config&) { return {}; }

    bypass() = default;
    explicit bypass(const config&) noexcept {}

    /// The memory budget is not changed.
    [[nodiscard]] std::size_t degraded_budget(std::size_t normal) const noexcept { return normal; }
};

static_assert(degradation_policy<bypass>);

}  // namespace tierguard::degradation
