// SipHash-2-4, which names the disk tier's blobs: a changed value would orphan every entry
// of an existing cache directory.

#include "support/test_framework.hpp"

#include <tierguard/detail/siphash.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

TEST_CASE("siphash24: the reference vectors (key 00..0f, message 00..n-1), every tail length") {
    // From the reference implementation's vectors.h (Aumasson and Bernstein); n = 15 is the
    // paper's worked example.
    const std::array<std::uint64_t, 2> key{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    struct vector {
        std::size_t n;
        std::uint64_t hash;
    };
    const vector vectors[] = {{0, 0x726fdb47dd0e0e31ULL}, {1, 0x74f839c593dc67fdULL},  {7, 0xab0200f58b01d137ULL},
                              {8, 0x93f5f5799a932462ULL}, {15, 0xa129ca6149be45e5ULL}, {16, 0x3f2acc7f57c29bdbULL},
                              {63, 0x958a324ceb064572ULL}};
    std::vector<std::byte> message;
    for (std::size_t i = 0; i < 64; ++i) message.push_back(static_cast<std::byte>(i));
    for (const vector& v : vectors) {
        INFO("n = " << v.n);
        CHECK(tierguard::detail::siphash24(key, std::span<const std::byte>(message).first(v.n)) == v.hash);
    }
}
