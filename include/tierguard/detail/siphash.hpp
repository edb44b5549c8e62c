#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace tierguard::detail {

/// SipHash-2-4 (Aumasson and Bernstein): a keyed 64-bit hash. With a secret key an
/// attacker who controls cache keys cannot aim them at one file name.
[[nodiscard]] inline std::uint64_t siphash24(const std::array<std::uint64_t, 2>& key,
                                             std::span<const std::byte> data) noexcept {
    auto rotl = [](std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); };
    std::uint64_t v0 = 0x736f6d6570736575ULL ^ key[0];
    std::uint64_t v1 = 0x646f72616e646f6dULL ^ key[1];
    std::uint64_t v2 = 0x6c7967656e657261ULL ^ key[0];
    std::uint64_t v3 = 0x7465646279746573ULL ^ key[1];
    auto round = [&] {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    };
    auto load = [&](std::size_t at, std::size_t n) {
        std::uint64_t m = 0;
        for (std::size_t i = 0; i < n; ++i) m |= std::uint64_t{std::to_integer<std::uint8_t>(data[at + i])} << (8 * i);
        return m;
    };
    const std::size_t whole = data.size() / 8 * 8;
    for (std::size_t at = 0; at < whole; at += 8) {
        const std::uint64_t m = load(at, 8);
        v3 ^= m;
        round();
        round();
        v0 ^= m;
    }
    const std::uint64_t last = load(whole, data.size() - whole) | (std::uint64_t{data.size() & 0xff} << 56);
    v3 ^= last;
    round();
    round();
    v0 ^= last;
    v2 ^= 0xff;
    round();
    round();
    round();
    round();
    return v0 ^ v1 ^ v2 ^ v3;
}

}  // namespace tierguard::detail
