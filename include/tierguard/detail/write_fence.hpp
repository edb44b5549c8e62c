#pragma once

#include <tierguard/detail/spin_mutex.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>

namespace tierguard::detail {

/// Keeps a copy read from a slower tier from overwriting a newer write in a faster one.
///
/// Writers of a key bracket their whole write (every tier) with begin() and end(). A
/// reader takes quiet() before reading the slower tier and, to copy what it read into
/// the faster tier, calls copy_if_quiet() with that ticket: the copy runs only if no
/// write of a key in the same stripe began since, and none is in flight; it runs under
/// the stripe lock, so a write that begins later lands after it. Keys share stripes, so
/// a write of another key can cancel a copy: that costs a later slow read, never a
/// wrong value.
class write_fence {
public:
    void begin(std::uint64_t hash) noexcept {
        stripe& s = stripe_of(hash);
        std::lock_guard lock(s.mutex);
        ++s.begun;
    }

    void end(std::uint64_t hash) noexcept {
        stripe& s = stripe_of(hash);
        std::lock_guard lock(s.mutex);
        ++s.ended;
    }

    /// A ticket for copy_if_quiet(), or nothing while a write is in flight.
    [[nodiscard]] std::optional<std::uint64_t> quiet(std::uint64_t hash) noexcept {
        stripe& s = stripe_of(hash);
        std::lock_guard lock(s.mutex);
        if (s.begun != s.ended) return std::nullopt;
        return s.begun;
    }

    /// Runs copy() if no write began since quiet() gave `ticket`; true if it ran.
    template <class F>
    bool copy_if_quiet(std::uint64_t hash, std::uint64_t ticket, F&& copy) {
        stripe& s = stripe_of(hash);
        std::lock_guard lock(s.mutex);
        if (s.begun != ticket || s.ended != ticket) return false;
        copy();
        return true;
    }

    /// True if no write began since quiet() gave `ticket`. For a copy too slow to run
    /// under the stripe lock (into a storage tier): made first, then checked, and undone
    /// if this is false, since a write may have landed before it.
    [[nodiscard]] bool quiet_since(std::uint64_t hash, std::uint64_t ticket) noexcept {
        return copy_if_quiet(hash, ticket, [] {});
    }

private:
    struct alignas(64) stripe {
        spin_mutex mutex;
        std::uint64_t begun = 0;
        std::uint64_t ended = 0;
    };

    [[nodiscard]] stripe& stripe_of(std::uint64_t hash) noexcept { return m_stripes[hash % m_stripes.size()]; }

    std::array<stripe, 64> m_stripes{};
};

}  // namespace tierguard::detail
