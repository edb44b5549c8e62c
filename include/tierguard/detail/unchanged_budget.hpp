#pragma once

#include <tierguard/degradation/concept.hpp>
#include <tierguard/result.hpp>

#include <cstddef>

namespace tierguard::detail {

/// A degradation policy with no settings that keeps the memory budget: bypass and fail_fast.
template <degraded_mode M>
struct unchanged_budget {
    static constexpr degraded_mode mode = M;

    /// No settings.
    struct config {};

    [[nodiscard]] static result<void> validate(const config&) { return {}; }

    unchanged_budget() = default;
    explicit unchanged_budget(const config&) noexcept {}

    /// The memory budget is not changed.
    [[nodiscard]] std::size_t degraded_budget(std::size_t normal) const noexcept { return normal; }
};

}  // namespace tierguard::detail
