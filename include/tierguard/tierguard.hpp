#pragma once

/// Umbrella header: everything a user of tierguard needs.

#include <tierguard/breaker/concept.hpp>
#include <tierguard/breaker/consecutive_failures.hpp>
#include <tierguard/breaker/none.hpp>
#include <tierguard/breaker/rolling_window.hpp>
#include <tierguard/cache.hpp>
#include <tierguard/clock/concept.hpp>
#include <tierguard/clock/manual.hpp>
#include <tierguard/clock/steady.hpp>
#include <tierguard/clock/system.hpp>
#include <tierguard/degradation/bypass.hpp>
#include <tierguard/degradation/concept.hpp>
#include <tierguard/degradation/fail_fast.hpp>
#include <tierguard/degradation/memory_only.hpp>
#include <tierguard/disk_tier.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/frame.hpp>
#include <tierguard/fwd.hpp>
#include <tierguard/hash.hpp>
#include <tierguard/listener/concept.hpp>
#include <tierguard/listener/none.hpp>
#include <tierguard/listener/stderr_logger.hpp>
#include <tierguard/memory_tier.hpp>
#include <tierguard/metrics.hpp>
#include <tierguard/result.hpp>
#include <tierguard/serializer/codec.hpp>
#include <tierguard/serializer/concept.hpp>
#include <tierguard/serializer/standard.hpp>
#include <tierguard/storage/concept.hpp>
#include <tierguard/storage/fault_injecting.hpp>
#include <tierguard/storage/memory_storage.hpp>
#include <tierguard/storage/posix_directory.hpp>
#include <tierguard/version.hpp>
#include <tierguard/weigher/concept.hpp>
#include <tierguard/weigher/dynamic_size.hpp>
