#pragma once

#include <tierguard/degradation/concept.hpp>
#include <tierguard/result.hpp>

#include <cstddef>
#include <limits>
#include <string>

namespace tierguard::degradation {

/// Seed 001's fallback: while the storage tier is down the cache serves and stores in
/// memory, with the memory budget grown by `budget_factor` to carry the load; when the
/// tier recovers the budget shrinks back, evicting least recently used entries.
struct memory_only {
    static constexpr degraded_mode mode = degraded_mode::memory_only;

    struct config {
        /// Memory budget while degraded = normal budget x budget_factor (seed 001: 2).
        double budget_factor = 2.0;
    };

    [[nodiscard]] static result<void> validate(const config& cfg) {
        if (cfg.budget_factor >= 1.0 && cfg.budget_factor <= 1024.0) return {};
        return fail(errc::invalid_argument, tier::memory,
                    "memory_only config.budget_factor is " + std::to_string(cfg.budget_factor) +
                        "; it must be in [1, 1024] (1 keeps the budget unchanged)");
    }

    memory_only() = default;
    explicit memory_only(const config& cfg) noexcept : m_factor(cfg.budget_factor) {}

    /// normal x budget_factor, saturating.
    [[nodiscard]] std::size_t degraded_budget(std::size_t normal) const noexcept {
        const double grown = static_cast<double>(normal) * m_factor;
        constexpr auto max = std::numeric_limits<std::size_t>::max();
        return grown >= static_cast<double>(max) ? max : static_cast<std::size_t>(grown);
    }

private:
    double m_factor = 2.0;
};

static_assert(degradation_policy<memory_only>);

}  // namespace tierguard::degradation
