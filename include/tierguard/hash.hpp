#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <type_traits>

namespace tierguard {

/// The default key hash: transparent for string-like keys, so a std::string-keyed tier
/// is queried with a std::string_view or a literal without building a std::string.
/// Other key types use std::hash<Key>; tierguard mixes the result, so an identity hash
/// (as for integers) is fine.
struct default_hash {
    using is_transparent = void;

    template <class K>
    [[nodiscard]] std::size_t operator()(const K& key) const noexcept {
        if constexpr (std::is_convertible_v<const K&, std::string_view>) {
            return std::hash<std::string_view>{}(std::string_view(key));
        } else {
            return std::hash<K>{}(key);
        }
    }
};

namespace detail {
/// A hash or equality that accepts other types than the key's own (heterogeneous lookup).
template <class F>
concept transparent = requires {
    typename F::is_transparent;
};

/// A 64-bit finalizer (murmur3's fmix64): every input bit affects every output bit,
/// so shards, buckets and tags may each take their own bits of one hash.
[[nodiscard]] constexpr std::uint64_t mix(std::uint64_t h) noexcept {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}
}  // namespace detail

}  // namespace tierguard
