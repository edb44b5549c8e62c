#include "support/test_framework.hpp"

#include <tierguard/detail/crc32.hpp>
#include <tierguard/frame.hpp>

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace detail = tierguard::detail;

namespace {

// The oracle: zlib's crc32() itself, in one call.
std::uint32_t zlib_crc(std::uint32_t crc, std::span<const std::byte> bytes) {
    return static_cast<std::uint32_t>(
        ::crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

struct path {
    const char* name;
    std::uint32_t (*run)(std::uint32_t, std::span<const std::byte>);
};

// Every implementation, each forced: zlib's, carry-less multiply in 128-, 256- and 512-bit
// registers (where the CPU has them), and the dispatch frame::checksum uses.
std::vector<path> paths() {
    std::vector<path> out{
        {"portable",
         [](std::uint32_t c, std::span<const std::byte> b) { return detail::crc32_portable(c, b.data(), b.size()); }},
        {"update", [](std::uint32_t c, std::span<const std::byte> b) { return detail::crc32_update(c, b); }},
    };
#if TIERGUARD_CRC32_CLMUL
    if (detail::crc32_clmul_supported())
        out.push_back({"clmul", [](std::uint32_t c, std::span<const std::byte> b) {
                           return detail::crc32_clmul(c, b.data(), b.size());
                       }});
    if (detail::crc32_vclmul_supported())
        out.push_back({"vclmul", [](std::uint32_t c, std::span<const std::byte> b) {
                           return detail::crc32_vclmul(c, b.data(), b.size());
                       }});
    if (detail::crc32_zclmul_supported())
        out.push_back({"zclmul", [](std::uint32_t c, std::span<const std::byte> b) {
                           return detail::crc32_zclmul(c, b.data(), b.size());
                       }});
#endif
    return out;
}

std::uint64_t seed_for(const char* what) {
    std::uint64_t seed = std::random_device{}();
    if (const char* forced = std::getenv("TIERGUARD_CRC32_SEED")) seed = std::strtoull(forced, nullptr, 10);
    std::printf("crc32 %s: seed %llu (rerun with TIERGUARD_CRC32_SEED=%llu)\n", what,
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    return seed;
}

std::vector<std::byte> random_bytes(std::size_t size, std::mt19937_64& rng) {
    std::vector<std::byte> out(size);
    for (auto& b : out) b = static_cast<std::byte>(rng());
    return out;
}

}  // namespace

TEST_CASE("crc32: the carry-less multiply paths run on this machine, or the test says which are skipped") {
#if TIERGUARD_CRC32_CLMUL
    if (!detail::crc32_clmul_supported()) WARN("this CPU has no PCLMULQDQ: only the zlib path is tested");
    if (!detail::crc32_vclmul_supported()) WARN("this CPU has no AVX2 + VPCLMULQDQ: crc32_vclmul is not tested");
    if (!detail::crc32_zclmul_supported()) WARN("this CPU has no AVX-512F + VPCLMULQDQ: crc32_zclmul is not tested");
    CHECK(paths().size() == 2U + (detail::crc32_clmul_supported() ? 1U : 0U) +
                                (detail::crc32_vclmul_supported() ? 1U : 0U) +
                                (detail::crc32_zclmul_supported() ? 1U : 0U));
    CHECK((!detail::crc32_vclmul_supported() || detail::crc32_clmul_supported()));
    CHECK((!detail::crc32_zclmul_supported() || detail::crc32_vclmul_supported()));
#else
    WARN("not x86-64: only the zlib path exists");
    CHECK(paths().size() == 2U);
#endif
}

TEST_CASE("crc32: every length 0..2048 at 16 misalignments equals zlib, from 0 and from a running CRC") {
    std::mt19937_64 rng(seed_for("lengths"));
    const auto source = random_bytes(2048 + 16, rng);
    for (const path& p : paths()) {
        INFO("path " << p.name);
        std::size_t mismatches = 0;
        for (std::size_t offset = 0; offset < 16; ++offset) {
            for (std::size_t length = 0; length <= 2048; ++length) {
                // A buffer of exactly offset + length bytes, so that a read past either end
                // is an ASan error; malloc aligns it to 16, so data() + offset is misaligned by offset.
                std::vector<std::byte> buffer(source.begin(),
                                              source.begin() + static_cast<std::ptrdiff_t>(offset + length));
                const auto bytes = std::span<const std::byte>(buffer).subspan(offset);
                const std::uint32_t start = (length % 2 == 0) ? 0U : static_cast<std::uint32_t>(rng());
                const std::uint32_t expected = zlib_crc(start, bytes);
                const std::uint32_t actual = p.run(start, bytes);
                if (actual != expected) {
                    if (++mismatches <= 5)
                        FAIL_CHECK("offset " << offset << " length " << length << " start " << start << ": " << actual
                                             << " != zlib " << expected);
                }
            }
        }
        CHECK(mismatches == 0);
    }
}

TEST_CASE("crc32: random buffers up to 1 MiB equal zlib") {
    std::mt19937_64 rng(seed_for("large"));
    const auto source = random_bytes((std::size_t{1} << 20) + 64, rng);
    const auto all = paths();
    for (int i = 0; i < 48; ++i) {
        // Half the lengths anywhere up to 1 MiB, half just around a multiple of 64.
        std::size_t length = rng() % ((std::size_t{1} << 20) + 1);
        if (i % 2 == 1) length = std::min<std::size_t>(length / 64 * 64 + rng() % 3, std::size_t{1} << 20);
        const std::size_t offset = rng() % 64;
        const auto bytes = std::span<const std::byte>(source).subspan(offset, length);
        const std::uint32_t start = static_cast<std::uint32_t>(rng());
        const std::uint32_t expected = zlib_crc(start, bytes);
        for (const path& p : all) {
            INFO("path " << p.name << " offset " << offset << " length " << length << " start " << start);
            CHECK(p.run(start, bytes) == expected);
        }
    }
}

TEST_CASE("crc32: chained calls over pieces equal one zlib call over the whole, whatever path each piece takes") {
    std::mt19937_64 rng(seed_for("chained"));
    const auto source = random_bytes(std::size_t{64} << 10, rng);
    const auto all = paths();
    for (int round = 0; round < 200; ++round) {
        const std::size_t length = rng() % (source.size() + 1);
        const auto whole = std::span<const std::byte>(source).first(length);
        const std::uint32_t expected = zlib_crc(0, whole);
        // Each path on its own, and the paths taken in turn piece by piece.
        for (std::size_t mode = 0; mode <= all.size(); ++mode) {
            std::uint32_t crc = 0;
            std::size_t pieces = 0;
            for (std::size_t at = 0; at < length; ++pieces) {
                // Piece sizes cover each regime: under 16, 16..63, and long.
                const std::size_t cap = std::size_t{1} << (rng() % 13);
                const std::size_t n = std::min(length - at, rng() % (cap + 1));
                const path& p = all[mode < all.size() ? mode : pieces % all.size()];
                crc = p.run(crc, whole.subspan(at, n));
                at += n;
            }
            INFO("round " << round << " length " << length << " mode " << mode << " pieces " << pieces);
            CHECK(crc == expected);
        }
    }
}

TEST_CASE("crc32: frame::checksum is zlib's CRC-32 of the bytes") {
    std::mt19937_64 rng(seed_for("frame"));
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{36}, std::size_t{63}, std::size_t{64},
                                   std::size_t{1073}, std::size_t{16433}}) {
        const auto bytes = random_bytes(size, rng);
        INFO("size " << size);
        CHECK(tierguard::frame::checksum(bytes) == zlib_crc(0, bytes));
    }
}

TEST_CASE("crc32: crc32_copy copies every length 0..2048 at 16 misalignments exactly and equals zlib, on every path") {
    std::mt19937_64 rng(seed_for("copy"));
    const auto source = random_bytes(2048 + 16, rng);
    using copy_fn = std::uint32_t (*)(std::uint32_t, std::byte*, std::span<const std::byte>);
    std::vector<std::pair<const char*, copy_fn>> copies{
        {"dispatch", [](std::uint32_t c, std::byte* out, std::span<const std::byte> in) {
             return detail::crc32_copy(c, out, in);
         }}};
#if TIERGUARD_CRC32_CLMUL
    if (detail::crc32_clmul_supported())
        copies.emplace_back("clmul", [](std::uint32_t c, std::byte* out, std::span<const std::byte> in) {
            return detail::crc32_clmul_detail::clmul<true>(c, in.data(), out, in.size());
        });
    if (detail::crc32_vclmul_supported())
        copies.emplace_back("vclmul", [](std::uint32_t c, std::byte* out, std::span<const std::byte> in) {
            return detail::crc32_clmul_detail::vclmul<true>(c, in.data(), out, in.size());
        });
    if (detail::crc32_zclmul_supported())
        copies.emplace_back("zclmul", [](std::uint32_t c, std::byte* out, std::span<const std::byte> in) {
            return detail::crc32_clmul_detail::zclmul<true>(c, in.data(), out, in.size());
        });
#endif
    for (const auto& [name, run] : copies) {
        INFO("path " << name);
        std::size_t mismatches = 0;
        for (std::size_t offset = 0; offset < 16; ++offset) {
            for (std::size_t length = 0; length <= 2048; ++length) {
                // Both buffers exactly as long as needed (ASan sees a byte past either end);
                // the destination misaligned differently from the source.
                std::vector<std::byte> in(source.begin(),
                                          source.begin() + static_cast<std::ptrdiff_t>(offset + length));
                std::vector<std::byte> out((offset * 7) % 16 + length, std::byte{0xA5});
                const auto bytes = std::span<const std::byte>(in).subspan(offset);
                const std::uint32_t start = (length % 2 == 0) ? 0U : static_cast<std::uint32_t>(rng());
                const std::uint32_t actual = run(start, out.data() + (offset * 7) % 16, bytes);
                const bool copied = std::equal(bytes.begin(), bytes.end(), out.begin() + (offset * 7) % 16) &&
                                    std::all_of(out.begin(), out.begin() + (offset * 7) % 16,
                                                [](std::byte b) { return b == std::byte{0xA5}; });
                if (actual != zlib_crc(start, bytes) || !copied) {
                    if (++mismatches <= 5)
                        FAIL_CHECK("offset " << offset << " length " << length << ": crc " << actual << " (zlib "
                                             << zlib_crc(start, bytes) << "), copied " << copied);
                }
            }
        }
        CHECK(mismatches == 0);
    }
}

TEST_CASE(
    "crc32: a frame's CRC-32 over all its bytes, checksum included, is intact_frame_crc exactly when the "
    "checksum is right") {
    std::mt19937_64 rng(seed_for("residue"));
    for (const std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{32}, std::size_t{1069}}) {
        auto bytes = random_bytes(size + 4, rng);
        const std::uint32_t crc = zlib_crc(0, std::span<const std::byte>(bytes).first(size));
        detail::store_le(bytes.data() + size, crc);
        INFO("size " << size);
        CHECK(zlib_crc(0, bytes) == tierguard::frame::intact_frame_crc);
        detail::store_le(bytes.data() + size, crc ^ (1U << (rng() % 32)));
        CHECK(zlib_crc(0, bytes) != tierguard::frame::intact_frame_crc);
    }
}

TEST_CASE("crc32: frame::decode_view given the CRC of the bytes still rejects a damaged frame") {
    const std::string key = "key";
    const std::string payload(1000, 'p');
    std::vector<std::byte> frame_bytes;
    tierguard::frame::zlib_streams zlib;
    REQUIRE(tierguard::frame::encode(std::as_bytes(std::span(key)), std::as_bytes(std::span(payload)), 1, 0, 0,
                                     frame_bytes, zlib));
    std::vector<std::byte> inflated;
    const auto whole = zlib_crc(0, frame_bytes);
    CHECK(whole == tierguard::frame::intact_frame_crc);
    const auto good = tierguard::frame::decode_view(frame_bytes, inflated, zlib, {}, whole);
    REQUIRE(good);
    CHECK(good->payload.size() == payload.size());
    frame_bytes[500] ^= std::byte{0x10};  // in the payload
    const auto bad = tierguard::frame::decode_view(frame_bytes, inflated, zlib, {}, zlib_crc(0, frame_bytes));
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code() == tierguard::errc::corrupted);
    CHECK(bad.error().context().find("checksum mismatch") != std::string::npos);
}
