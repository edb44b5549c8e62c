#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>

namespace tierguard {

namespace detail {
// What a policy may ask the table about a live position: its entry's full hash and weight.
struct eviction_view_archetype {
    [[nodiscard]] std::uint64_t hash_at(std::uint32_t) const noexcept { return 0; }
    [[nodiscard]] std::size_t weight_at(std::uint32_t) const noexcept { return 0; }
};
struct position_visitor_archetype {
    void operator()(std::uint32_t) const noexcept {}
};
}  // namespace detail

/// Decides which entry of a memory-tier shard leaves when the shard needs room. One
/// object per shard, used under the shard's lock except for hit() (see concurrent_hits).
///
/// The shard names entries by their position in its hash table (0 .. capacity - 1).
/// Positions move: deletion shifts later entries back (move()), and growth rebuilds the
/// table (relocate()). The policy keeps whatever it needs per position and in its own
/// queues; it never sees keys or values. Stock policies: eviction::lru (exact LRU within
/// a shard) and eviction::s3fifo (S3-FIFO, the default).
///
/// @code
/// struct lru_policies : tierguard::memory_defaults {
///     using eviction = tierguard::eviction::lru;
/// };
/// tierguard::memory_tier<std::string, std::string, lru_policies> tier;
/// @endcode
template <class P>
concept eviction_policy = std::default_initializable<P> &&
    requires(P& p, const P& cp, std::uint32_t pos, std::uint64_t hash, std::size_t n, const std::uint32_t* moved,
             const detail::eviction_view_archetype& view, const detail::position_visitor_archetype& visit) {
    {
        P::concurrent_hits
        } -> std::convertible_to<bool>;  // true: hit() may run without the lock, beside
                                         // lookups and other hits (then it must not throw)
    p.relocate(n, moved);                // the table now has n positions; moved[old] = new position of each live
                                         // entry (strong guarantee: may throw std::bad_alloc, changing nothing)
    p.insert(pos, hash, n);              // a new entry (hash, weight n) at pos; strong guarantee, as relocate()
    p.hit(pos);                          // the entry at pos was read
    { p.erase(pos, n) }
    noexcept;  // the entry at pos (weight n) leaves: erased, replaced, expired or evicted
    { p.move(pos, pos) }
    noexcept;  // the entry at the first position moved to the second
    { p.victim(view) }
    noexcept->std::same_as<std::uint32_t>;  // the entry to evict next (the shard
                                            // holds one); erase() follows
    cp.for_each(visit);                     // each live position, in the order the policy would consider evicting them
    { p.clear() }
    noexcept;  // every entry left
};

}  // namespace tierguard
