#pragma once

#include <tierguard/degradation/concept.hpp>
#include <tierguard/detail/unchanged_budget.hpp>

namespace tierguard::degradation {

/// Seed 002's fallback table: while the storage tier is down the cache steps aside.
/// get is a miss (errc::circuit_open), put stores nowhere, erase removes nothing; each
/// is counted in the metrics. The memory tier is left as it was.
using bypass = detail::unchanged_budget<degraded_mode::bypass>;

static_assert(degradation_policy<bypass>);

}  // namespace tierguard::degradation
