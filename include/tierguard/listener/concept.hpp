#pragma once

#include <tierguard/errc.hpp>

#include <concepts>
#include <cstddef>
#include <string_view>

namespace tierguard {

/// What happened: the operator-facing events of a cache.
enum class event_kind : unsigned char {
    corrupted,               ///< an entry failed validation (it is then quarantined)
    quarantined,             ///< a file was moved to the quarantine folder
    version_mismatch,        ///< an entry of another format or schema version was removed
    disk_full,               ///< the storage ran out of space (after an emergency eviction and a retry)
    emergency_eviction,      ///< space was freed because a write met a full disk
    io_error,                ///< the storage reported an I/O or permission failure
    scrub_done,              ///< a scrub finished; detail summarizes its report
    breaker_state_changed,   ///< a tier's breaker moved; detail is "<from> -> <to>", e.g. "closed -> open"
    degraded_entered,        ///< the cache went into degraded mode: it serves without this tier
    degraded_left,           ///< the cache left degraded mode: it uses this tier again
    probe_failed,            ///< an integrity probe of a tier failed; cause says how
    storage_unavailable,     ///< a storage tier could not be opened (at open or a probe); cause says why
    storage_attached,        ///< a storage tier that could not be opened at open is open and in use
    invalidation_link_lost,  ///< a shared tier's invalidation link went down: faster tiers are not trusted
    invalidation_link_up,    ///< the link is up again (or for the first time): faster tiers were flushed
};

/// How many event kinds there are: each kind's value is below it, so a listener can keep
/// per-kind counters in an array. Kept equal to the last kind plus one.
inline constexpr std::size_t event_kind_count = static_cast<std::size_t>(event_kind::invalidation_link_up) + 1;

/// Stable name of a kind, e.g. "probe_failed"; "unknown" for a value out of range.
[[nodiscard]] constexpr std::string_view to_string(event_kind k) noexcept {
    switch (k) {
        case event_kind::corrupted: return "corrupted";
        case event_kind::quarantined: return "quarantined";
        case event_kind::version_mismatch: return "version_mismatch";
        case event_kind::disk_full: return "disk_full";
        case event_kind::emergency_eviction: return "emergency_eviction";
        case event_kind::io_error: return "io_error";
        case event_kind::scrub_done: return "scrub_done";
        case event_kind::breaker_state_changed: return "breaker_state_changed";
        case event_kind::degraded_entered: return "degraded_entered";
        case event_kind::degraded_left: return "degraded_left";
        case event_kind::probe_failed: return "probe_failed";
        case event_kind::storage_unavailable: return "storage_unavailable";
        case event_kind::storage_attached: return "storage_attached";
        case event_kind::invalidation_link_lost: return "invalidation_link_lost";
        case event_kind::invalidation_link_up: return "invalidation_link_up";
    }
    return "unknown";
}

/// One event. The views are valid only during the call.
struct event {
    event_kind kind;
    tier where;
    std::string_view detail;  ///< what and where, for a log line (a file name, a summary)
    const failure* cause;     ///< the failure behind it, or nullptr
};

/// Receives a cache's events: the Listener policy.
///
/// Called synchronously, possibly under a tier's lock: it must be quick, must not
/// throw, and must not call back into the cache. Forward to a queue or a logger.
///
/// @code
/// struct counting_listener {
///     std::atomic<int>* seen;
///     void on_event(const tierguard::event&) noexcept { ++*seen; }
/// };
/// @endcode
template <class L>
concept listener_policy = requires(L& l, const event& e) {
    { l.on_event(e) } -> std::same_as<void>;  // handle one event
    requires noexcept(l.on_event(e));         // never throws into the cache
};

}  // namespace tierguard
