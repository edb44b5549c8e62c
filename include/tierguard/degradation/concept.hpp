#pragma once

#include <tierguard/result.hpp>

#include <concepts>
#include <cstddef>
#include <string_view>

namespace tierguard {

/// What the cache does while its storage tier's breaker rejects calls.
///
/// | while the tier is unavailable | memory_only                      | bypass                         | fail_fast |
/// |-------------------------------|----------------------------------|--------------------------------|--------------------|
/// | get, memory hit               | served                           | miss (errc::circuit_open)      | served | |
/// get, memory miss              | miss (errc::circuit_open)        | miss (errc::circuit_open)      |
/// errc::circuit_open | | put                           | memory only (stored_in::memory)  | stored nowhere, counted |
/// errc::circuit_open | | erase                         | memory; the storage copy is      | removes nothing (false),
/// | errc::circuit_open | |                               | removed once the tier is back    | counted | | | memory
/// byte budget            | grown by the policy              | unchanged                      | unchanged          |
///
/// A get's errc::circuit_open is a miss caused by the breaker: the caller loads the
/// value as for any miss. Under fail_fast, put and erase fail and touch nothing, so the
/// caller knows the cache did not take the write.
enum class degraded_mode : unsigned char { memory_only, bypass, fail_fast };

[[nodiscard]] constexpr std::string_view to_string(degraded_mode m) noexcept {
    switch (m) {
        case degraded_mode::memory_only: return "memory_only";
        case degraded_mode::bypass: return "bypass";
        case degraded_mode::fail_fast: return "fail_fast";
    }
    return "unknown";
}

/// Decides what the cache does while a storage tier is unavailable: the Degradation
/// policy. `mode` picks the behaviour of the table above; degraded_budget() gives the
/// memory tier's byte budget while degraded (the normal budget comes back, with
/// eviction, when the tier recovers).
///
/// @code
/// struct triple_memory {
///     static constexpr tierguard::degraded_mode mode = tierguard::degraded_mode::memory_only;
///     struct config {};
///     static tierguard::result<void> validate(const config&) { return {}; }
///     explicit triple_memory(const config&) {}
///     std::size_t degraded_budget(std::size_t normal) const noexcept { return normal * 3; }
/// };
/// @endcode
template <class D>
concept degradation_policy = requires(const D& d, const typename D::config& cfg, std::size_t budget) {
    requires std::default_initializable<typename D::config>;  // run-time settings with defaults
    requires std::constructible_from<D, const typename D::config&>;
    { D::validate(cfg) } -> std::same_as<result<void>>;          // errc::invalid_argument naming a bad setting
    { D::mode } -> std::convertible_to<degraded_mode>;           // the behaviour, fixed at compile time
    { d.degraded_budget(budget) } -> std::same_as<std::size_t>;  // memory byte budget while degraded
    requires noexcept(d.degraded_budget(budget));
};

}  // namespace tierguard
