#pragma once

#include <tierguard/clock/concept.hpp>
#include <tierguard/errc.hpp>
#include <tierguard/result.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace tierguard {

/// Where a breaker stands.
enum class breaker_state : unsigned char {
    closed,     ///< normal service: every call is allowed
    open,       ///< the tier is failing: every call is rejected until the open period ends
    half_open,  ///< testing recovery: only probe calls are allowed
};

[[nodiscard]] constexpr std::string_view to_string(breaker_state s) noexcept {
    switch (s) {
        case breaker_state::closed: return "closed";
        case breaker_state::open: return "open";
        case breaker_state::half_open: return "half_open";
    }
    return "unknown";
}

/// Whether a failure code, reported on its own, says the tier itself is failing.
///
/// Counted: io_error, disk_full, permission_denied, timeout, and locked (another process
/// holds the tier's directory: the tier cannot serve). Not counted, because the tier
/// answered and only the entry or the call was unusable: miss, expired, version_mismatch,
/// too_large, invalid_argument, serialization_failed, loader_failed, closed, and circuit_open
/// (the breaker's own rejection; counting it would keep a breaker open by itself).
///
/// corrupted is not counted on its own: one bad file says nothing about the disk (seed
/// 000's crash came from a single corrupted file). A run of them does: the breakers
/// count the corruption_threshold-th consecutive corrupted result, and every corrupted
/// result after it in the same run, as failures. Any other result ends the run.
[[nodiscard]] constexpr bool counts_as_failure(errc code) noexcept {
    switch (code) {
        case errc::io_error:
        case errc::disk_full:
        case errc::permission_denied:
        case errc::timeout:
        case errc::locked: return true;
        case errc::miss:
        case errc::expired:
        case errc::corrupted:
        case errc::version_mismatch:
        case errc::circuit_open:
        case errc::too_large:
        case errc::invalid_argument:
        case errc::serialization_failed:
        case errc::loader_failed:
        case errc::closed: return false;
    }
    return false;
}

/// How many recent failures a breaker's snapshot keeps (seed 002 keeps about 50).
inline constexpr std::size_t breaker_failure_history = 50;

/// One failure a breaker was told about.
struct breaker_failure {
    errc code = errc::io_error;
    /// When it was reported: the breaker clock's time since its epoch (Unix time for
    /// clock::system and clock::manual; arbitrary for clock::steady). Compare with
    /// breaker_snapshot::now.
    std::chrono::nanoseconds at{};
};

/// A breaker's state and counters at one instant, for metrics and logs.
///
/// Counters run from construction or the last reset(). successes + failures + ignored
/// is the number of results reported; admitted + rejected the number of allow() calls.
struct breaker_snapshot {
    breaker_state state = breaker_state::closed;
    /// Held open by force_open(): no half-open until force_closed() or reset().
    bool forced_open = false;
    /// Counted failures / results in the breaker's rate window (0 when it saw no result).
    double failure_rate = 0.0;
    std::uint64_t window_calls = 0;     ///< results in the rate window
    std::uint64_t window_failures = 0;  ///< counted failures in the rate window
    /// Counted failures since the last success (ignored results do not end the streak).
    std::uint32_t consecutive_failures = 0;
    std::uint64_t state_changes = 0;  ///< transitions between states, forced ones included
    std::uint64_t opens = 0;          ///< transitions into open, forced ones included
    std::uint64_t admitted = 0;       ///< allow() calls that returned true
    std::uint64_t rejected = 0;       ///< allow() calls that returned false
    std::uint64_t successes = 0;      ///< on_success(), and on_failure() with a code that does not count
    std::uint64_t failures = 0;       ///< on_failure() results that counted
    std::uint64_t ignored = 0;        ///< corrupted results short of a run (see counts_as_failure)
    std::chrono::nanoseconds now{};   ///< the clock reading the snapshot was taken at
    std::chrono::nanoseconds time_in_state{};
    /// The length of the current open period, or of the next one while closed or half-open
    /// after a failed probe (the backoff).
    std::chrono::nanoseconds open_period{};
    /// While open (not forced): time left until half-open; otherwise zero.
    std::chrono::nanoseconds until_half_open{};
    /// Counted failures and corrupted results, oldest first, newest last; at most
    /// breaker_failure_history.
    std::vector<breaker_failure> recent_failures;
};

/// Decides whether a storage tier may be called, and learns from how calls went: the
/// Breaker policy. The cache keeps one per storage tier.
///
/// Protocol: ask allow() before a call; if it says no, do not make the call (the cache
/// answers errc::circuit_open or degrades). After an allowed call, report exactly one
/// result: on_success(), or on_failure(code). Results are attributed to the state at the
/// time they are reported. Every operation except snapshot() and validate() is noexcept
/// and allocation-free; all of them may be called from many threads at once.
///
/// @code
/// template <tierguard::breaker_policy B, tierguard::storage_policy S>
/// tierguard::result<std::vector<std::byte>> guarded_read(B& breaker, S& storage, std::string_view name) {
///     if (!breaker.allow()) return tierguard::fail(tierguard::errc::circuit_open, tierguard::tier::disk);
///     auto bytes = storage.read(name);
///     if (bytes) breaker.on_success(); else breaker.on_failure(bytes.error().code());
///     return bytes;
/// }
/// @endcode
template <class B>
concept breaker_policy = requires(B& b, const B& cb, const typename B::config& cfg, errc code) {
    requires clock_policy<typename B::clock_type>;            // the time source of open periods and windows
    requires std::default_initializable<typename B::config>;  // run-time settings, an aggregate with defaults
    requires std::constructible_from<B, const typename B::config&, typename B::clock_type>;  // built from both
    { B::validate(cfg) } -> std::same_as<result<void>>;   // errc::invalid_argument naming a bad setting
    { b.allow() } -> std::same_as<bool>;                  // may a call be made now? half-open: only probes
    { b.on_success() } -> std::same_as<void>;             // an allowed call succeeded
    { b.on_failure(code) } -> std::same_as<void>;         // an allowed call failed; the breaker decides if it counts
    { cb.state() } -> std::same_as<breaker_state>;        // after any time-driven transition that is due
    { cb.snapshot() } -> std::same_as<breaker_snapshot>;  // state and counters for metrics
    { b.force_open() } -> std::same_as<void>;             // open until force_closed() or reset()
    { b.force_closed() } -> std::same_as<void>;           // close now; counters and history are kept
    { b.reset() } -> std::same_as<void>;                  // a new breaker's state: closed, nothing counted
    // all but validate() and snapshot() are called on every cache operation: they never throw
    requires noexcept(b.allow());
    requires noexcept(b.on_success());
    requires noexcept(b.on_failure(code));
    requires noexcept(cb.state());
    requires noexcept(b.force_open());
    requires noexcept(b.force_closed());
    requires noexcept(b.reset());
};

}  // namespace tierguard
