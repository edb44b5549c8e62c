#pragma once

#include <tierguard/detail/ttl.hpp>
#include <tierguard/listener/concept.hpp>
#include <tierguard/result.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tierguard::detail {

/// The answer to a full disk that disk_tier and range_cache share (seed 004): evict a share
/// of the entries and retry the write once; after a retry that met a full disk again, fail
/// at once, without evicting, for `backoff` (otherwise every write would evict and the
/// store would empty itself for nothing).
template <class TimePoint>
struct emergency_eviction {
    TimePoint paused_until = TimePoint::min();

    /// Makes the write `write()` (a result<void>); on errc::disk_full counts it in
    /// `disk_full_events` (the retry's too), evicts with `evict(victims)` (which returns how
    /// many it evicted, counted in `evicted_total`) where `victims` is `fraction` of `live`
    /// (at least 1), and retries once. `unit` names what is evicted in the event; empty for
    /// a storage that evicts by itself. Events go to `emit(event_kind, std::string, const
    /// failure*)`. Returns the last write's outcome.
    template <class Clock, class Write, class Evict, class Emit>
    result<void> write(const std::string& name, const Clock& clock, std::chrono::nanoseconds backoff, std::size_t live,
                       double fraction, std::string_view unit, std::uint64_t& disk_full_events,
                       std::uint64_t& evicted_total, Write&& write, Evict&& evict, Emit&& emit) {
        auto written = write();
        if (written || written.error().code() != errc::disk_full) return written;
        ++disk_full_events;
        if (clock.now() < paused_until) {
            emit(event_kind::disk_full,
                 "write of " + name + " met a full disk; no emergency eviction since the last one freed no room",
                 &written.error());
            return written;
        }
        const auto victims = std::max<std::size_t>(1, static_cast<std::size_t>(static_cast<double>(live) * fraction));
        const std::size_t evicted = evict(victims);
        evicted_total += evicted;
        emit(event_kind::emergency_eviction,
             unit.empty() ? std::string("the storage evicted for room after ENOSPC; retrying")
                          : "evicted " + std::to_string(evicted) + " " + std::string(unit) + " after ENOSPC",
             &written.error());
        written = write();
        if (!written && written.error().code() == errc::disk_full) {
            ++disk_full_events;
            paused_until = expiry_after(clock.now(), backoff);
            emit(event_kind::disk_full, "write of " + name + " failed again after emergency eviction",
                 &written.error());
        }
        return written;
    }
};

}  // namespace tierguard::detail
