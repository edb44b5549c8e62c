#include "support/allocation_counter.hpp"
#include "support/test_framework.hpp"

#include <tierguard/frame.hpp>

#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <span>
#include <string>
#include <string_view>
#include <vector>

using tierguard::errc;
namespace frame = tierguard::frame;

using tierguard_test::largest_allocation;

namespace {

std::vector<std::byte> bytes_of(std::string_view text) {
    std::vector<std::byte> out(text.size());
    std::transform(text.begin(), text.end(), out.begin(), [](char c) { return static_cast<std::byte>(c); });
    return out;
}

std::vector<std::byte> compressible(std::size_t size) {
    std::vector<std::byte> out(size);
    for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<std::byte>("tierguard "[i % 10]);
    return out;
}

// xorshift: bytes deflate cannot shrink.
std::vector<std::byte> incompressible(std::size_t size) {
    std::vector<std::byte> out(size);
    std::uint64_t state = 0x9E3779B97F4A7C15ULL;
    for (auto& b : out) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        b = static_cast<std::byte>(state);
    }
    return out;
}

std::vector<std::byte> encode_ok(std::span<const std::byte> key, std::span<const std::byte> payload, int level,
                                 std::uint32_t schema = 1, std::int64_t expiry = 0) {
    std::vector<std::byte> out;
    const auto ok = frame::encode(key, payload, schema, expiry, level, out);
    REQUIRE(ok);
    return out;
}

void put_u16(std::vector<std::byte>& f, std::size_t at, std::uint16_t v) {
    for (std::size_t i = 0; i < 2; ++i) f[at + i] = static_cast<std::byte>(v >> (8 * i));
}
void put_u32(std::vector<std::byte>& f, std::size_t at, std::uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i) f[at + i] = static_cast<std::byte>(v >> (8 * i));
}
void put_u64(std::vector<std::byte>& f, std::size_t at, std::uint64_t v) {
    for (std::size_t i = 0; i < 8; ++i) f[at + i] = static_cast<std::byte>(v >> (8 * i));
}

std::uint32_t zlib_crc(std::span<const std::byte> bytes) {
    return static_cast<std::uint32_t>(
        crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(bytes.size())));
}

// Rewrites the trailing CRC so that a tampered frame passes the checksum and reaches the
// checks behind it.
void reseal(std::vector<std::byte>& f) { put_u32(f, f.size() - 4, zlib_crc(std::span(f).first(f.size() - 4))); }

// A frame built field by field from the documented layout, independently of frame::encode.
std::vector<std::byte> hand_made(std::uint16_t version, std::uint16_t flags, std::uint32_t schema,
                                 std::span<const std::byte> key, std::span<const std::byte> stored,
                                 std::uint32_t raw_length, std::int64_t expiry) {
    std::vector<std::byte> f(32);
    f[0] = std::byte{'T'};
    f[1] = std::byte{'G'};
    f[2] = std::byte{'F'};
    f[3] = std::byte{'R'};
    put_u16(f, 4, version);
    put_u16(f, 6, flags);
    put_u32(f, 8, schema);
    put_u32(f, 12, static_cast<std::uint32_t>(key.size()));
    put_u32(f, 16, static_cast<std::uint32_t>(stored.size()));
    put_u32(f, 20, raw_length);
    put_u64(f, 24, static_cast<std::uint64_t>(expiry));
    f.insert(f.end(), key.begin(), key.end());
    f.insert(f.end(), stored.begin(), stored.end());
    f.resize(f.size() + 4);
    reseal(f);
    return f;
}

std::vector<std::byte> zlib_deflate(std::span<const std::byte> raw, int level = 9) {
    uLongf size = compressBound(static_cast<uLong>(raw.size()));
    std::vector<std::byte> out(size);
    REQUIRE(compress2(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                      static_cast<uLong>(raw.size()), level) == Z_OK);
    out.resize(size);
    return out;
}

void check_rejected(std::span<const std::byte> bytes) {
    const auto result = frame::decode(bytes);
    REQUIRE_FALSE(result);
    const errc code = result.error().code();
    CHECK((code == errc::corrupted || code == errc::version_mismatch));
    CHECK(result.error().where() == tierguard::tier::disk);
    CHECK_FALSE(result.error().context().empty());
}

bool contains(const tierguard::failure& f, std::string_view text) {
    return f.context().find(text) != std::string::npos;
}

}  // namespace

TEST_CASE("frame: the layout matches docs/FORMAT.md byte for byte") {
    const auto key = bytes_of("user:42");
    const auto payload = bytes_of("hello");
    const auto f = encode_ok(key, payload, 0, 1, 0);
    CHECK(f == hand_made(1, 0, 1, key, payload, 5, 0));
    REQUIRE(f.size() == 48);
    // The CRC of this exact frame, as printed in docs/FORMAT.md.
    CHECK(f[44] == std::byte{0x48});
    CHECK(f[45] == std::byte{0x23});
    CHECK(f[46] == std::byte{0x8f});
    CHECK(f[47] == std::byte{0xd6});
}

TEST_CASE("frame: round trip without compression") {
    const auto key = bytes_of("user:42");
    const auto payload = bytes_of("hello, frame");
    const auto f = encode_ok(key, payload, 0, 7, 1'700'000'000'123'456'789);
    CHECK(f.size() == frame::overhead + key.size() + payload.size());

    const auto d = frame::decode(f);
    REQUIRE(d);
    CHECK(d->key == key);
    CHECK(d->payload == payload);
    CHECK(d->head.format_version == 1);
    CHECK(d->head.flags == 0);
    CHECK_FALSE(d->head.compressed());
    CHECK(d->head.schema_version == 7);
    CHECK(d->head.key_length == key.size());
    CHECK(d->head.stored_length == payload.size());
    CHECK(d->head.raw_length == payload.size());
    CHECK(d->head.expiry_ns == 1'700'000'000'123'456'789);
}

TEST_CASE("frame: round trip with compression at every level") {
    const auto key = bytes_of("report:2024");
    const auto payload = compressible(10'000);
    for (int level = 1; level <= 9; ++level) {
        INFO("level " << level);
        const auto f = encode_ok(key, payload, level, 3, -5);
        CHECK(f.size() < frame::overhead + key.size() + payload.size());
        const auto d = frame::decode(f);
        REQUIRE(d);
        CHECK(d->head.compressed());
        CHECK(d->head.flags == frame::flag_zlib);
        CHECK(d->head.raw_length == payload.size());
        CHECK(d->head.stored_length < payload.size());
        CHECK(d->head.expiry_ns == -5);
        CHECK(d->key == key);
        CHECK(d->payload == payload);
    }
}

TEST_CASE("frame: a payload compression does not shrink is stored raw") {
    const auto key = bytes_of("k");
    for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{8}, std::size_t{4096}}) {
        INFO("payload of " << size << " bytes");
        const auto payload = incompressible(size);
        const auto f = encode_ok(key, payload, 9);
        CHECK(f.size() == frame::overhead + key.size() + size);
        const auto d = frame::decode(f);
        REQUIRE(d);
        CHECK_FALSE(d->head.compressed());
        CHECK(d->payload == payload);
    }
}

TEST_CASE("frame: empty key and empty payload round-trip") {
    for (int level : {0, 6}) {
        const auto f = encode_ok({}, {}, level);
        CHECK(f.size() == frame::overhead);
        const auto d = frame::decode(f);
        REQUIRE(d);
        CHECK(d->key.empty());
        CHECK(d->payload.empty());

        const auto payload = compressible(300);
        const auto g = encode_ok({}, payload, level);
        const auto e = frame::decode(g);
        REQUIRE(e);
        CHECK(e->key.empty());
        CHECK(e->payload == payload);

        const auto key = bytes_of("only-a-key");
        const auto h = encode_ok(key, {}, level);
        const auto k = frame::decode(h);
        REQUIRE(k);
        CHECK(k->key == key);
        CHECK(k->payload.empty());
    }
}

TEST_CASE("frame: a 64 KiB key round-trips") {
    const auto key = incompressible(64 * 1024);
    const auto payload = compressible(5000);
    for (int level : {0, 1}) {
        const auto d = frame::decode(encode_ok(key, payload, level));
        REQUIRE(d);
        CHECK(d->key == key);
        CHECK(d->payload == payload);
    }
}

TEST_CASE("frame: encode refuses oversize keys and payloads, and bad levels") {
    std::vector<std::byte> out = bytes_of("stale");
    const frame::limits small{.max_key = 4, .max_payload = 8};

    const auto long_key = frame::encode(bytes_of("12345"), bytes_of("x"), 1, 0, 0, out, small);
    REQUIRE_FALSE(long_key);
    CHECK(long_key.error().code() == errc::too_large);
    CHECK(out.empty());

    const auto long_payload = frame::encode(bytes_of("k"), bytes_of("123456789"), 1, 0, 0, out, small);
    REQUIRE_FALSE(long_payload);
    CHECK(long_payload.error().code() == errc::too_large);

    REQUIRE(frame::encode(bytes_of("1234"), bytes_of("12345678"), 1, 0, 0, out, small));

    const auto default_key = frame::encode(std::vector<std::byte>((1 << 20) + 1), {}, 1, 0, 0, out);
    REQUIRE_FALSE(default_key);
    CHECK(default_key.error().code() == errc::too_large);

    for (int level : {-1, 10}) {
        const auto bad = frame::encode(bytes_of("k"), bytes_of("v"), 1, 0, level, out);
        REQUIRE_FALSE(bad);
        CHECK(bad.error().code() == errc::invalid_argument);
    }
}

TEST_CASE("frame: decode_header reads the fields without checking the CRC") {
    const auto key = bytes_of("user:42");
    const auto payload = compressible(1000);
    auto f = encode_ok(key, payload, 6, 2, 99);
    const auto h = frame::decode_header(f);
    REQUIRE(h);
    CHECK(h->format_version == 1);
    CHECK(h->compressed());
    CHECK(h->schema_version == 2);
    CHECK(h->key_length == key.size());
    CHECK(h->raw_length == payload.size());
    CHECK(h->total_size() == f.size());
    CHECK(h->expiry_ns == 99);

    f[frame::header_size] ^= std::byte{1};
    CHECK(frame::decode_header(f));
    const auto d = frame::decode(f);
    REQUIRE_FALSE(d);
    CHECK(d.error().code() == errc::corrupted);
    CHECK(contains(d.error(), "checksum mismatch"));

    f.pop_back();
    const auto short_header = frame::decode_header(f);
    REQUIRE_FALSE(short_header);
    CHECK(short_header.error().code() == errc::corrupted);
    CHECK(contains(short_header.error(), "length fields say"));
}

TEST_CASE("frame: every single-bit flip is rejected") {
    const auto key = bytes_of("user:42");
    SECTION("stored raw") {
        const auto sample = encode_ok(key, bytes_of("hello, bit flips"), 0, 2, 123456789);
        for (std::size_t bit = 0; bit < sample.size() * 8; ++bit) {
            auto f = sample;
            f[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
            INFO("bit " << bit);
            check_rejected(f);
        }
    }
    SECTION("compressed") {
        const auto sample = encode_ok(key, compressible(400), 9, 2, 123456789);
        REQUIRE(frame::decode(sample)->head.compressed());
        for (std::size_t bit = 0; bit < sample.size() * 8; ++bit) {
            auto f = sample;
            f[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
            INFO("bit " << bit);
            check_rejected(f);
        }
    }
}

TEST_CASE("frame: every truncation is rejected") {
    for (int level : {0, 9}) {
        const auto sample = encode_ok(bytes_of("user:42"), compressible(200), level);
        for (std::size_t n = 0; n < sample.size(); ++n) {
            INFO("level " << level << ", " << n << " of " << sample.size() << " bytes");
            const auto d = frame::decode(std::span(sample).first(n));
            REQUIRE_FALSE(d);
            CHECK(d.error().code() == errc::corrupted);
        }
    }
    const auto empty = encode_ok({}, {}, 0);
    const auto tiny = frame::decode(std::span(empty).first(35));
    REQUIRE_FALSE(tiny);
    CHECK(contains(tiny.error(), "minimum"));
}

TEST_CASE("frame: appended bytes are rejected") {
    const auto sample = encode_ok(bytes_of("user:42"), bytes_of("hello"), 0);
    for (std::size_t extra : {std::size_t{1}, std::size_t{4}, std::size_t{100}}) {
        auto f = sample;
        f.resize(f.size() + extra, std::byte{0});
        const auto d = frame::decode(f);
        REQUIRE_FALSE(d);
        CHECK(d.error().code() == errc::corrupted);
        CHECK(contains(d.error(), "length fields say 48 bytes, file has " + std::to_string(48 + extra)));
    }
}

TEST_CASE("frame: a wrong magic is rejected") {
    auto f = encode_ok(bytes_of("k"), bytes_of("v"), 0);
    f[0] = std::byte{'X'};
    reseal(f);
    const auto d = frame::decode(f);
    REQUIRE_FALSE(d);
    CHECK(d.error().code() == errc::corrupted);
    CHECK(contains(d.error(), "bad magic"));
}

TEST_CASE("frame: length fields of 0xFFFFFFFF are rejected without allocating") {
    const auto sample = encode_ok(bytes_of("user:42"), bytes_of("hello"), 0);
    for (std::size_t field_at : {std::size_t{12}, std::size_t{16}, std::size_t{20}}) {
        for (bool resealed : {false, true}) {
            auto f = sample;
            put_u32(f, field_at, 0xFFFFFFFFU);
            if (resealed) reseal(f);
            INFO("field at offset " << field_at << (resealed ? ", CRC fixed" : ""));
            largest_allocation = 0;
            const auto d = frame::decode(f);
            REQUIRE_FALSE(d);
            CHECK(d.error().code() == errc::corrupted);
            CHECK(largest_allocation < 4096);
        }
    }
}

TEST_CASE("frame: a valid-CRC frame claiming a 4 GiB payload is rejected before allocating") {
    const auto stored = zlib_deflate(compressible(100));
    const auto f = hand_made(1, frame::flag_zlib, 1, bytes_of("big"), stored, 0xFFFFFFFFU, 0);
    largest_allocation = 0;
    const auto d = frame::decode(f);
    REQUIRE_FALSE(d);
    CHECK(d.error().code() == errc::corrupted);
    CHECK(contains(d.error(), "raw_length 4294967295 exceeds the limit"));
    CHECK(largest_allocation < 4096);

    // Tighter limits apply to keys and payloads alike.
    const auto fine = hand_made(1, frame::flag_zlib, 1, bytes_of("big"), stored, 100, 0);
    REQUIRE(frame::decode(fine));
    CHECK_FALSE(frame::decode(fine, {.max_key = 1 << 20, .max_payload = 99}));
    const auto long_key = frame::decode(fine, {.max_key = 2, .max_payload = 1 << 20});
    REQUIRE_FALSE(long_key);
    CHECK(contains(long_key.error(), "key_length 3 exceeds the limit of 2"));
}

TEST_CASE("frame: a decompression bomb is rejected after at most raw_length bytes") {
    const std::vector<std::byte> zeros(1 << 20);
    const auto bomb = zlib_deflate(zeros);
    REQUIRE(bomb.size() < 4096);
    const auto f = hand_made(1, frame::flag_zlib, 1, bytes_of("bomb"), bomb, 1024, 0);
    largest_allocation = 0;
    const auto d = frame::decode(f);
    REQUIRE_FALSE(d);
    CHECK(d.error().code() == errc::corrupted);
    CHECK(contains(d.error(), "more than raw_length 1024"));
    CHECK(largest_allocation < 64 * 1024);
}

TEST_CASE("frame: a raw_length within limits but far beyond the stream is refused without allocating it") {
    const auto stored = zlib_deflate(compressible(1000));
    const auto f = hand_made(1, frame::flag_zlib, 1, bytes_of("k"), stored, 48U << 20, 0);
    largest_allocation = 0;
    const auto d = frame::decode(f);
    REQUIRE_FALSE(d);
    CHECK(d.error().code() == errc::corrupted);
    CHECK(contains(d.error(), "inflates to 1000 bytes"));
    CHECK(largest_allocation < (1U << 20));
}

TEST_CASE("frame: a highly compressed payload much larger than its stream round-trips") {
    const auto payload = compressible(3U << 20);
    const auto f = encode_ok(bytes_of("big"), payload, 9);
    REQUIRE(f.size() < 64 * 1024);
    const auto d = frame::decode(f);
    REQUIRE(d);
    CHECK(d->payload == payload);
}

TEST_CASE("frame: a zlib stream that inflates to fewer bytes than raw_length is rejected") {
    const auto payload = compressible(1000);
    const auto f = hand_made(1, frame::flag_zlib, 1, bytes_of("k"), zlib_deflate(payload), 1001, 0);
    const auto d = frame::decode(f);
    REQUIRE_FALSE(d);
    CHECK(d.error().code() == errc::corrupted);
    CHECK(contains(d.error(), "inflates to 1000 bytes"));
}

TEST_CASE("frame: a truncated zlib stream with a valid CRC is rejected") {
    const auto payload = compressible(1000);
    auto stream = zlib_deflate(payload);
    stream.resize(stream.size() / 2);
    const auto d = frame::decode(hand_made(1, frame::flag_zlib, 1, bytes_of("k"), stream, 1000, 0));
    REQUIRE_FALSE(d);
    CHECK(d.error().code() == errc::corrupted);
    CHECK(contains(d.error(), "ends early"));
}

TEST_CASE("frame: bytes after the zlib stream inside the payload are rejected") {
    const auto payload = compressible(1000);
    auto stream = zlib_deflate(payload);
    stream.push_back(std::byte{0});
    const auto d = frame::decode(hand_made(1, frame::flag_zlib, 1, bytes_of("k"), stream, 1000, 0));
    REQUIRE_FALSE(d);
    CHECK(d.error().code() == errc::corrupted);
    CHECK(contains(d.error(), "follow the end of the zlib stream"));
}

TEST_CASE("frame: a compressed flag on bytes that are not a zlib stream is rejected") {
    const auto d = frame::decode(hand_made(1, frame::flag_zlib, 1, bytes_of("k"), bytes_of("not zlib"), 8, 0));
    REQUIRE_FALSE(d);
    CHECK(d.error().code() == errc::corrupted);
    CHECK(contains(d.error(), "zlib"));
}

TEST_CASE("frame: an uncompressed payload must have stored_length == raw_length") {
    const auto d = frame::decode(hand_made(1, 0, 1, bytes_of("k"), bytes_of("hello"), 6, 0));
    REQUIRE_FALSE(d);
    CHECK(d.error().code() == errc::corrupted);
    CHECK(contains(d.error(), "stored_length 5 differs from raw_length 6"));
}

TEST_CASE("frame: reserved flag bits are rejected") {
    for (std::uint16_t flags : {std::uint16_t{0x0002}, std::uint16_t{0x8000}, std::uint16_t{0x0003}}) {
        const auto d = frame::decode(hand_made(1, flags, 1, bytes_of("k"), bytes_of("v"), 1, 0));
        REQUIRE_FALSE(d);
        CHECK(d.error().code() == errc::corrupted);
        CHECK(contains(d.error(), "reserved bits"));
        CHECK_FALSE(frame::decode_header(hand_made(1, flags, 1, bytes_of("k"), bytes_of("v"), 1, 0)));
    }
}

TEST_CASE("frame: another format version is a version mismatch, not corruption") {
    for (std::uint16_t version : {std::uint16_t{0}, std::uint16_t{2}, std::uint16_t{0xFFFF}}) {
        const auto f = hand_made(version, 0, 1, bytes_of("k"), bytes_of("v"), 1, 0);
        const auto d = frame::decode(f);
        REQUIRE_FALSE(d);
        CHECK(d.error().code() == errc::version_mismatch);
        CHECK(contains(d.error(), "format_version " + std::to_string(version)));
        const auto h = frame::decode_header(f);
        REQUIRE_FALSE(h);
        CHECK(h.error().code() == errc::version_mismatch);
    }
}

TEST_CASE("frame: the schema version is carried, not judged") {
    const auto d = frame::decode(hand_made(1, 0, 0xDEADBEEF, bytes_of("k"), bytes_of("v"), 1, 0));
    REQUIRE(d);
    CHECK(d->head.schema_version == 0xDEADBEEF);
}

TEST_CASE("frame: one zlib_streams serves every level, survives failed decodes, and matches the one-shot calls") {
    frame::zlib_streams zlib;
    const auto key = bytes_of("k");
    auto bad = zlib_deflate(compressible(1000));
    bad.resize(bad.size() / 2);
    const auto truncated = hand_made(1, frame::flag_zlib, 1, key, bad, 1000, 0);
    std::vector<std::byte> inflated;
    for (const int level : {1, 6, 6, 9, 1, 0, 6}) {
        INFO("level " << level);
        const auto payload = compressible(static_cast<std::size_t>(500 + 700 * level));
        std::vector<std::byte> f;
        REQUIRE(frame::encode(key, payload, 2, 7, level, f, zlib));
        CHECK(f == encode_ok(key, payload, level, 2, 7));
        const auto v = frame::decode_view(f, inflated, zlib);
        REQUIRE(v);
        CHECK(v->head.compressed() == (level != 0));
        CHECK(std::ranges::equal(v->key, key));
        CHECK(std::ranges::equal(v->payload, payload));
        // The uncompressed payload is a view into the frame itself.
        if (level == 0) CHECK(v->payload.data() == f.data() + frame::header_size + key.size());
        const auto failed = frame::decode_view(truncated, inflated, zlib);
        REQUIRE_FALSE(failed);
        CHECK(contains(failed.error(), "ends early"));
    }
}
