#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace tierguard::detail {

namespace siphash_detail {

// One SipRound. A function forced inline, not a lambda over the four words: GCC kept such a
// lambda out of line, with the words in memory (two thirds of the hash's time on a get).
[[gnu::always_inline]] inline void round(std::uint64_t& v0, std::uint64_t& v1, std::uint64_t& v2,
                                         std::uint64_t& v3) noexcept {
    v0 += v1;
    v1 = std::rotl(v1, 13);
    v1 ^= v0;
    v0 = std::rotl(v0, 32);
    v2 += v3;
    v3 = std::rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = std::rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = std::rotl(v1, 17);
    v1 ^= v2;
    v2 = std::rotl(v2, 32);
}

// 8 bytes at p, little-endian.
[[gnu::always_inline]] inline std::uint64_t word(const std::byte* p) noexcept {
    std::uint64_t m;
    std::memcpy(&m, p, sizeof m);
    if constexpr (std::endian::native == std::endian::big) m = __builtin_bswap64(m);
    return m;
}

}  // namespace siphash_detail

/// SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit hash. With a secret key an
/// attacker who controls cache keys cannot aim them at one file name.
[[nodiscard]] inline std::uint64_t siphash24(const std::array<std::uint64_t, 2>& key,
                                             std::span<const std::byte> data) noexcept {
    using siphash_detail::round;
    std::uint64_t v0 = 0x736f6d6570736575ULL ^ key[0];
    std::uint64_t v1 = 0x646f72616e646f6dULL ^ key[1];
    std::uint64_t v2 = 0x6c7967656e657261ULL ^ key[0];
    std::uint64_t v3 = 0x7465646279746573ULL ^ key[1];
    const std::size_t whole = data.size() / 8 * 8;
    for (std::size_t at = 0; at < whole; at += 8) {
        const std::uint64_t m = siphash_detail::word(data.data() + at);
        v3 ^= m;
        round(v0, v1, v2, v3);
        round(v0, v1, v2, v3);
        v0 ^= m;
    }
    std::uint64_t last = std::uint64_t{data.size() & 0xff} << 56;
    for (std::size_t i = whole; i < data.size(); ++i)
        last |= std::uint64_t{std::to_integer<std::uint8_t>(data[i])} << (8 * (i - whole));
    v3 ^= last;
    round(v0, v1, v2, v3);
    round(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    round(v0, v1, v2, v3);
    round(v0, v1, v2, v3);
    round(v0, v1, v2, v3);
    round(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace tierguard::detail
