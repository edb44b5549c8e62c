#pragma once

/// Umbrella header: everything a user of tierguard needs.

#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/clock/steady.hpp>
#include <tierguard/clock/system.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/fwd.hpp>
#include <tierguard/hash.hpp>
#include <tierguard/memory_tier.hpp>
#include <tierguard/result.hpp>
#include <tierguard/version.hpp>
#include <tierguard/weigher/concept.hpp>
#include <tierguard/weigher/dynamic_size.hpp>
