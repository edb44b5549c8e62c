#pragma once

#include <tierguard/degradation/concept.hpp>
#include <tierguard/detail/unchanged_budget.hpp>

namespace tierguard::degradation {

/// While the storage tier is down every operation that needs it fails at once with
/// errc::circuit_open and changes nothing; memory hits are still served. For callers
/// that must know, on each call, that the cache did not take a write.
using fail_fast = detail::unchanged_budget<degraded_mode::fail_fast>;

static_assert(degradation_policy<fail_fast>);

}  // namespace tierguard::degradation
