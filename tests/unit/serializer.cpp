#include "support/allocation_counter.hpp"
#include "support/property.hpp"
#include "support/test_framework.hpp"

#include <tierguard/serializer/codec.hpp>
#include <tierguard/serializer/concept.hpp>
#include <tierguard/serializer/standard.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

using tierguard::errc;

namespace {

enum class role : std::uint8_t { customer, staff, admin };

struct address {
    std::string city;
    std::optional<std::string> postcode;
    friend bool operator==(const address&, const address&) = default;
};

// A record that uses every codec helper: ranged enums, optionals, sequences,
// sets, maps, durations and time points, and a nested codec (alone and in a vector).
struct profile {
    std::uint64_t id = 0;
    std::int32_t karma = 0;
    std::string name;
    std::vector<role> roles;
    address home;
    std::vector<address> past;
    std::map<std::string, std::int64_t> counters;
    std::unordered_map<std::uint32_t, std::string> labels;
    std::set<std::string> tags;
    std::optional<std::chrono::system_clock::time_point> last_seen;
    std::chrono::milliseconds session_ttl{0};
    std::chrono::duration<double> window{0};
    std::vector<std::uint8_t> avatar;
    bool active = false;
    friend bool operator==(const profile&, const profile&) = default;
};

profile sample_profile() {
    using namespace std::chrono;
    profile p;
    p.id = 42;
    p.karma = -17;
    p.name = "Ada Lovelace";
    p.roles = {role::staff, role::admin};
    p.home = {"London", "W1"};
    p.past = {{"Paris", std::nullopt}, {"Turin", "10121"}};
    p.counters = {{"logins", 7}, {"posts", -1}};
    p.labels = {{1, "one"}, {2, "two"}};
    p.tags = {"analyst", "engine"};
    p.last_seen = system_clock::time_point(duration_cast<system_clock::duration>(seconds(1'700'000'000)));
    p.session_ttl = minutes(30);
    p.window = duration<double>(2.5);
    p.avatar = {0x89, 'P', 'N', 'G'};
    p.active = true;
    return p;
}

struct plain_point {
    std::int32_t x;
    std::int32_t y;
    double weight;
    friend bool operator==(const plain_point&, const plain_point&) = default;
};

enum class colour : std::uint16_t { red = 1, green = 2, blue = 0x1234 };

// Trivially copyable, but with a codec that must win over the memcpy encoding.
struct versioned_id {
    std::uint32_t value = 0;
    friend bool operator==(const versioned_id&, const versioned_id&) = default;
};

struct no_encoding {
    std::string name;
};

template <class T>
std::vector<std::byte> encode_ok(const T& value) {
    std::vector<std::byte> out;
    const auto ok = tierguard::serializer::standard{}.encode(value, out);
    REQUIRE(ok);
    return out;
}

template <class T>
tierguard::result<T> decode_as(std::span<const std::byte> bytes) {
    return tierguard::serializer::standard{}.decode(bytes, std::type_identity<T>{});
}

template <class T>
void check_round_trip(const T& value) {
    const auto bytes = encode_ok(value);
    const auto back = decode_as<T>(bytes);
    REQUIRE(back);
    CHECK(*back == value);
}

std::vector<std::byte> bytes_of(std::initializer_list<unsigned> values) {
    std::vector<std::byte> out;
    for (unsigned v : values) out.push_back(static_cast<std::byte>(v));
    return out;
}

}  // namespace

template <>
struct tierguard::enum_range<role> {
    static constexpr role first = role::customer;
    static constexpr role last = role::admin;
};

template <>
struct tierguard::enum_range<colour> {
    static constexpr bool contains(colour c) { return c == colour::red || c == colour::green || c == colour::blue; }
};

template <>
struct tierguard::value_traits<profile> {
    static constexpr std::uint32_t schema_version = 2;
};

template <>
struct tierguard::codec<address> {
    static void encode(const address& a, tierguard::byte_writer& w) { w.write(a.city, a.postcode); }
    static tierguard::result<address> decode(tierguard::byte_reader& r) {
        address a;
        auto ok = r.read_fields(tierguard::field("city", a.city), tierguard::field("postcode", a.postcode));
        if (!ok) return tierguard::unexpected(std::move(ok).error());
        return a;
    }
};

template <>
struct tierguard::codec<profile> {
    static void encode(const profile& p, tierguard::byte_writer& w) {
        w.write(p.id, p.karma, p.name, p.roles, p.home, p.past, p.counters, p.labels, p.tags, p.last_seen,
                p.session_ttl, p.window, p.avatar, p.active);
    }
    static tierguard::result<profile> decode(tierguard::byte_reader& r) {
        using tierguard::field;
        profile p;
        auto ok = r.read_fields(field("id", p.id), field("karma", p.karma), field("name", p.name),
                                field("roles", p.roles), field("home", p.home), field("past", p.past),
                                field("counters", p.counters), field("labels", p.labels), field("tags", p.tags),
                                field("last_seen", p.last_seen), field("session_ttl", p.session_ttl),
                                field("window", p.window), field("avatar", p.avatar), field("active", p.active));
        if (!ok) return tierguard::unexpected(std::move(ok).error());
        return p;
    }
};

template <>
struct tierguard::codec<versioned_id> {
    static void encode(const versioned_id& v, tierguard::byte_writer& w) {
        w.u8(0xA5);
        w.u32(v.value);
    }
    static tierguard::result<versioned_id> decode(tierguard::byte_reader& r) {
        auto tag = r.u8("tag");
        if (!tag) return tierguard::unexpected(std::move(tag).error());
        if (*tag != 0xA5) return tierguard::fail(errc::serialization_failed, tierguard::tier::disk, "bad tag");
        return r.u32("value").transform([](std::uint32_t v) { return versioned_id{v}; });
    }
};

using tierguard::serializer::standard;

static_assert(tierguard::serializer_policy<standard, std::string>);
static_assert(tierguard::serializer_policy<standard, std::vector<std::byte>>);
static_assert(tierguard::serializer_policy<standard, std::vector<char>>);
static_assert(tierguard::serializer_policy<standard, std::vector<unsigned char>>);
static_assert(tierguard::serializer_policy<standard, std::vector<std::uint8_t>>);
static_assert(tierguard::serializer_policy<standard, std::int64_t>);
static_assert(tierguard::serializer_policy<standard, plain_point>);
static_assert(tierguard::serializer_policy<standard, colour>);
static_assert(tierguard::serializer_policy<standard, std::array<char, 16>>);
static_assert(tierguard::serializer_policy<standard, profile>);
static_assert(tierguard::serializer_policy<standard, versioned_id>);
static_assert(tierguard::has_codec<profile>);
static_assert(!tierguard::has_codec<plain_point>);
// Neither a codec, raw bytes, nor trivially copyable: the policy does not apply.
static_assert(!tierguard::serializer_policy<standard, no_encoding>);
static_assert(!tierguard::serializer_policy<standard, std::map<int, int>>);
static_assert(!tierguard::serializer_policy<standard, int*>);
static_assert(tierguard::value_traits<profile>::schema_version == 2);
static_assert(tierguard::value_traits<plain_point>::schema_version == 1);

TEST_CASE("standard serializer: trivially copyable values round-trip through exactly sizeof(T) bytes") {
    check_round_trip(std::int64_t{-1234567890123});
    check_round_trip(std::uint8_t{0xFE});
    check_round_trip(3.25);
    check_round_trip(-0.0f);
    check_round_trip(std::numeric_limits<double>::infinity());
    check_round_trip(true);
    check_round_trip(false);
    check_round_trip(colour::blue);
    check_round_trip(plain_point{-7, 9, 0.5});
    check_round_trip(std::array<char, 5>{'a', 'b', '\0', 'd', 'e'});

    CHECK(encode_ok(plain_point{1, 2, 3.0}).size() == sizeof(plain_point));
    CHECK(encode_ok(std::uint16_t{7}).size() == 2);
}

TEST_CASE("standard serializer: a trivially copyable value of the wrong size is refused") {
    const auto eight = encode_ok(std::int64_t{5});
    for (std::size_t n : {std::size_t{0}, std::size_t{4}, std::size_t{7}, std::size_t{9}}) {
        std::vector<std::byte> bytes(eight);
        bytes.resize(n);
        const auto back = decode_as<std::int64_t>(bytes);
        REQUIRE_FALSE(back);
        CHECK(back.error().code() == errc::serialization_failed);
        CHECK(back.error().context().find("8 bytes") != std::string::npos);
    }
    const auto as_point = decode_as<plain_point>(eight);
    REQUIRE_FALSE(as_point);
    CHECK(as_point.error().code() == errc::serialization_failed);
}

TEST_CASE("standard serializer: a bool byte other than 0 or 1 is refused") {
    const auto back = decode_as<bool>(bytes_of({2}));
    REQUIRE_FALSE(back);
    CHECK(back.error().code() == errc::serialization_failed);
}

TEST_CASE("standard serializer: strings and byte vectors are stored as their raw bytes") {
    const std::string text("with\0nul and more", 17);
    CHECK(encode_ok(text).size() == 17);
    check_round_trip(text);
    check_round_trip(std::string());
    check_round_trip(std::string(100'000, 'x'));
    check_round_trip(bytes_of({0, 1, 2, 0xFF}));
    check_round_trip(std::vector<std::byte>());
    check_round_trip(std::vector<char>{'a', '\0', 'z'});
    check_round_trip(std::vector<unsigned char>{0, 128, 255});
    check_round_trip(std::vector<std::uint8_t>{9, 8, 7});

    // Any bytes are a valid string: raw bytes carry no structure to validate.
    const auto garbage = bytes_of({0xFF, 0x00, 0x80});
    const auto back = decode_as<std::string>(garbage);
    REQUIRE(back);
    CHECK(back->size() == 3);
}

TEST_CASE("standard serializer: encode appends and leaves earlier bytes alone") {
    std::vector<std::byte> out = bytes_of({0xAA, 0xBB});
    REQUIRE(standard{}.encode(std::string("hi"), out));
    REQUIRE(standard{}.encode(std::uint16_t{0x0102}, out));
    REQUIRE(out.size() == 6);
    CHECK(out[0] == std::byte{0xAA});
    CHECK(out[1] == std::byte{0xBB});
    CHECK(out[2] == std::byte{'h'});
    CHECK(out[3] == std::byte{'i'});
}

TEST_CASE("standard serializer: a record with a codec round-trips, every field intact") {
    const profile full = sample_profile();
    check_round_trip(full);

    profile sparse;
    sparse.id = 1;
    check_round_trip(sparse);
    CHECK(encode_ok(sparse).size() < encode_ok(full).size());
}

TEST_CASE("standard serializer: a codec takes precedence over the memcpy encoding") {
    const auto bytes = encode_ok(versioned_id{0x01020304});
    REQUIRE(bytes.size() == 5);
    CHECK(bytes == bytes_of({0xA5, 0x04, 0x03, 0x02, 0x01}));
    check_round_trip(versioned_id{77});
}

TEST_CASE("standard serializer: every truncation of a record is an error, never a partial record") {
    const auto bytes = encode_ok(sample_profile());
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        const auto back = decode_as<profile>(std::span(bytes).first(n));
        INFO("truncated to " << n << " of " << bytes.size() << " bytes");
        REQUIRE_FALSE(back);
        CHECK(back.error().code() == errc::serialization_failed);
        CHECK(back.error().context().find("field '") != std::string::npos);
    }
}

TEST_CASE("standard serializer: trailing bytes after a record are an error") {
    auto bytes = encode_ok(sample_profile());
    bytes.push_back(std::byte{0});
    const auto back = decode_as<profile>(bytes);
    REQUIRE_FALSE(back);
    CHECK(back.error().code() == errc::serialization_failed);
    CHECK(back.error().context().find("unread") != std::string::npos);
}

// Where the fields of sample_profile() start in its encoding.
constexpr std::size_t name_at = 8 + 4;
const std::size_t roles_at = name_at + 4 + sample_profile().name.size();

TEST_CASE("standard serializer: garbage is refused as a record") {
    SECTION("all 0xFF: the name's length is far beyond the input") {
        const std::vector<std::byte> garbage(64, std::byte{0xFF});
        const auto back = decode_as<profile>(garbage);
        REQUIRE_FALSE(back);
        CHECK(back.error().code() == errc::serialization_failed);
        CHECK(back.error().context().find("'name'") != std::string::npos);
    }
    SECTION("an out-of-range enum in a sequence names the field and the element") {
        auto bytes = encode_ok(sample_profile());
        REQUIRE(bytes[roles_at + 4 + 1] == std::byte{static_cast<std::uint8_t>(role::admin)});
        bytes[roles_at + 4 + 1] = std::byte{9};
        const auto back = decode_as<profile>(bytes);
        REQUIRE_FALSE(back);
        CHECK(back.error().code() == errc::serialization_failed);
        CHECK(back.error().context() == "byte_reader: field 'roles' element 1: at offset " +
                                            std::to_string(roles_at + 5) + " holds 9, outside the enum_range 0..2");
    }
    SECTION("an optional's presence flag in a nested record that is neither 0 nor 1") {
        auto bytes = encode_ok(sample_profile());
        const auto p = sample_profile();
        const std::size_t flag_at = roles_at + 4 + p.roles.size() + 4 + p.home.city.size();
        REQUIRE(bytes[flag_at] == std::byte{1});
        bytes[flag_at] = std::byte{7};
        const auto back = decode_as<profile>(bytes);
        REQUIRE_FALSE(back);
        CHECK(back.error().context().find("byte_reader: field 'home': field 'postcode' at offset") == 0);
        CHECK(back.error().context().find("holds 7, a bool must be 0 or 1") != std::string::npos);
    }
    SECTION("an empty input") {
        const auto back = decode_as<profile>({});
        REQUIRE_FALSE(back);
        CHECK(back.error().code() == errc::serialization_failed);
    }
}

TEST_CASE("byte_writer: fixed-width fields are little-endian") {
    std::vector<std::byte> out;
    tierguard::byte_writer w(out);
    w.u8(0x01);
    w.u16(0x0203);
    w.u32(0x04050607);
    w.u64(0x08090A0B0C0D0E0FULL);
    w.i64(-2);
    w.boolean(true);
    w.boolean(false);
    REQUIRE(w.status());
    CHECK(w.size() == 1 + 2 + 4 + 8 + 8 + 2);
    CHECK(out == bytes_of({0x01, 0x03, 0x02, 0x07, 0x06, 0x05, 0x04, 0x0F, 0x0E, 0x0D, 0x0C, 0x0B, 0x0A,
                           0x09, 0x08, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00}));
}

TEST_CASE("byte_writer: strings and byte sequences carry a u32 length prefix") {
    std::vector<std::byte> out;
    tierguard::byte_writer w(out);
    w.string("abc");
    w.bytes(bytes_of({0xFF}));
    w.string("");
    CHECK(out == bytes_of({3, 0, 0, 0, 'a', 'b', 'c', 1, 0, 0, 0, 0xFF, 0, 0, 0, 0}));
}

TEST_CASE("byte_reader: reads back what byte_writer wrote, then finishes") {
    std::vector<std::byte> out;
    tierguard::byte_writer w(out);
    w.u8(200);
    w.u16(65535);
    w.u32(4'000'000'000U);
    w.u64(std::numeric_limits<std::uint64_t>::max());
    w.i64(std::numeric_limits<std::int64_t>::min());
    w.f64(-0.0);
    w.f64(std::numeric_limits<double>::quiet_NaN());
    w.f64(1e300);
    w.boolean(true);
    w.string("tierguard");
    w.bytes(bytes_of({1, 2, 3}));

    tierguard::byte_reader r(out);
    CHECK(r.u8().value() == 200);
    CHECK(r.u16().value() == 65535);
    CHECK(r.u32().value() == 4'000'000'000U);
    CHECK(r.u64().value() == std::numeric_limits<std::uint64_t>::max());
    CHECK(r.i64().value() == std::numeric_limits<std::int64_t>::min());
    const double negative_zero = r.f64().value();
    CHECK(negative_zero == 0.0);
    CHECK(std::signbit(negative_zero));
    CHECK(std::isnan(r.f64().value()));
    CHECK(r.f64().value() == 1e300);
    CHECK(r.boolean().value());
    CHECK(r.string().value() == "tierguard");
    CHECK(r.bytes().value() == bytes_of({1, 2, 3}));
    CHECK(r.remaining() == 0);
    CHECK(r.finish());
}

TEST_CASE("byte_reader: a short read names the field and offset and consumes nothing") {
    const auto bytes = bytes_of({1, 2, 3});
    tierguard::byte_reader r(bytes);
    REQUIRE(r.u8("version"));
    const auto wide = r.u32("count");
    REQUIRE_FALSE(wide);
    CHECK(wide.error().code() == errc::serialization_failed);
    CHECK(wide.error().context().find("'count'") != std::string::npos);
    CHECK(wide.error().context().find("offset 1") != std::string::npos);
    CHECK(r.offset() == 1);
    CHECK(r.u16("rest").value() == 0x0302);
    CHECK(r.finish());
}

TEST_CASE("byte_reader: a length prefix beyond the input fails before allocating") {
    // Claims a 4 GiB - 1 string in a 6-byte input.
    const auto bytes = bytes_of({0xFF, 0xFF, 0xFF, 0xFF, 'h', 'i'});
    tierguard::byte_reader r(bytes);
    const auto text = r.string("name");
    REQUIRE_FALSE(text);
    CHECK(text.error().code() == errc::serialization_failed);
    CHECK(text.error().context().find("'name'") != std::string::npos);
    CHECK(r.offset() == 0);
    const auto blob = r.bytes("blob");
    REQUIRE_FALSE(blob);
    CHECK(r.remaining() == 6);
}

TEST_CASE("byte_reader: finish fails while bytes remain") {
    const auto bytes = bytes_of({1, 2});
    tierguard::byte_reader r(bytes);
    REQUIRE(r.u8());
    const auto done = r.finish();
    REQUIRE_FALSE(done);
    CHECK(done.error().code() == errc::serialization_failed);
    CHECK(done.error().context().find("1 unread") != std::string::npos);
}

TEST_CASE("byte_reader: a bool must be 0 or 1") {
    const auto bytes = bytes_of({2});
    tierguard::byte_reader r(bytes);
    const auto flag = r.boolean("verified");
    REQUIRE_FALSE(flag);
    CHECK(flag.error().context().find("'verified'") != std::string::npos);
    CHECK(r.offset() == 0);
}

// ---- the helpers: byte_writer::write and byte_reader::read ----

namespace {

template <class... T>
std::vector<std::byte> written(const T&... values) {
    std::vector<std::byte> out;
    tierguard::byte_writer w(out);
    w.write(values...);
    REQUIRE(w.status());
    return out;
}

template <class T>
tierguard::result<T> read_back(std::span<const std::byte> bytes, std::string_view field = "value") {
    tierguard::byte_reader r(bytes);
    auto value = r.read<T>(field);
    if (value) REQUIRE(r.finish());
    return value;
}

template <class T>
void check_helper_round_trip(const T& value) {
    const auto bytes = written(value);
    auto back = read_back<T>(bytes);
    REQUIRE(back);
    CHECK(*back == value);
    // A counting writer agrees with the real one.
    tierguard::byte_writer counter;
    counter.write(value);
    CHECK(counter.size() == bytes.size());
}

// Every strict prefix of value's encoding fails, names the field and consumes nothing.
template <class T>
void check_every_truncation_fails(const T& value) {
    const auto bytes = written(value);
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        INFO("truncated to " << n << " of " << bytes.size() << " bytes");
        tierguard::byte_reader r{std::span(bytes).first(n)};
        const auto back = r.read<T>("subject");
        REQUIRE_FALSE(back);
        CHECK(back.error().code() == errc::serialization_failed);
        CHECK(back.error().context().find("field 'subject'") != std::string::npos);
        CHECK(r.offset() == 0);
    }
}

struct empty_record {
    friend bool operator==(const empty_record&, const empty_record&) = default;
};

enum class unranged : std::uint8_t { a, b };

}  // namespace

template <>
struct tierguard::codec<empty_record> {
    static void encode(const empty_record&, tierguard::byte_writer&) {}
    static tierguard::result<empty_record> decode(tierguard::byte_reader&) { return empty_record{}; }
};

namespace codec_traits = tierguard::detail;
static_assert(codec_traits::codec_readable<std::vector<std::vector<std::string>>>);
static_assert(codec_traits::codec_readable<std::map<std::string, std::optional<address>>>);
static_assert(codec_traits::codec_readable<std::chrono::steady_clock::time_point>);
static_assert(codec_traits::codec_writable<std::span<const std::int32_t>>);
static_assert(codec_traits::codec_writable<std::string_view>);
// Written, not read back: a view has nowhere to put the bytes, an array no emplace_back.
static_assert(!codec_traits::codec_readable<std::span<const std::int32_t>>);
static_assert(!codec_traits::codec_readable<std::string_view>);
static_assert(!codec_traits::codec_readable<std::array<int, 3>>);
// An enum without an enum_range has no range check, so it is not a codec value.
static_assert(!codec_traits::codec_writable<unranged>);
static_assert(codec_traits::codec_writable<std::byte>);
static_assert(!codec_traits::codec_writable<no_encoding>);
static_assert(!codec_traits::codec_writable<long double>);
static_assert(!codec_traits::codec_writable<const char*>);

TEST_CASE("byte_writer::write: each kind of value has the documented encoding") {
    using namespace std::chrono;
    SECTION("integers at their own width, two's complement") {
        CHECK(written(std::int8_t{-2}, std::int16_t{-2}, std::uint32_t{7}) == bytes_of({0xFE, 0xFE, 0xFF, 7, 0, 0, 0}));
        CHECK(written(std::int32_t{-1}) == bytes_of({0xFF, 0xFF, 0xFF, 0xFF}));
        CHECK(written(std::byte{0xAB}, true, 'x') == bytes_of({0xAB, 1, 'x'}));
    }
    SECTION("floats as f64") { CHECK(written(1.5f) == written(1.5)); }
    SECTION("an enum as its underlying integer") {
        CHECK(written(role::admin) == bytes_of({2}));
        CHECK(written(colour::blue) == bytes_of({0x34, 0x12}));
    }
    SECTION("strings with a u32 byte count, as string()") {
        CHECK(written(std::string("ab"), std::string_view("c")) == bytes_of({2, 0, 0, 0, 'a', 'b', 1, 0, 0, 0, 'c'}));
    }
    SECTION("a duration as its count, a time point as its duration since the epoch") {
        CHECK(written(seconds(-1)) == written(std::int64_t{-1}));
        CHECK(written(duration<std::int32_t, std::milli>(5)) == bytes_of({5, 0, 0, 0}));
        CHECK(written(duration<double>(0.25)) == written(0.25));
        CHECK(written(sys_seconds(seconds(3))) == written(std::int64_t{3}));
    }
    SECTION("an optional as a presence byte, then the value") {
        CHECK(written(std::optional<std::uint16_t>()) == bytes_of({0}));
        CHECK(written(std::optional<std::uint16_t>(0x0102)) == bytes_of({1, 2, 1}));
    }
    SECTION("a sequence as a u32 count, then its elements; byte sequences as bytes()") {
        CHECK(written(std::vector<std::uint16_t>{1, 2}) == bytes_of({2, 0, 0, 0, 1, 0, 2, 0}));
        CHECK(written(std::list<bool>{true}) == bytes_of({1, 0, 0, 0, 1}));
        CHECK(written(std::vector<bool>{false, true}) == bytes_of({2, 0, 0, 0, 0, 1}));
        const auto raw = bytes_of({9, 8});
        std::vector<std::byte> via_bytes;
        tierguard::byte_writer(via_bytes).bytes(raw);
        CHECK(written(raw) == via_bytes);
        CHECK(written(std::vector<char>{9, 8}) == via_bytes);
        CHECK(written(std::span<const std::byte>(raw)) == via_bytes);
    }
    SECTION("a map as a u32 count, then key and value of each entry in iteration order") {
        CHECK(written(std::map<std::uint8_t, bool>{{2, false}, {1, true}}) == bytes_of({2, 0, 0, 0, 1, 1, 2, 0}));
    }
    SECTION("a nested codec inline, with nothing around it") {
        const address home{"Oslo", std::nullopt};
        CHECK(written(home) == written(std::string("Oslo"), false));
    }
}

TEST_CASE("byte_writer::write: the same bytes as the primitives a hand-written codec calls") {
    // So a codec can move to the helpers without a schema bump while its field types stay the same.
    std::vector<std::byte> by_hand;
    tierguard::byte_writer w(by_hand);
    w.u64(42);
    w.string("ada@example.org");
    w.u8(static_cast<std::uint8_t>(role::admin));
    w.boolean(true);
    w.string("+44");
    w.i64(1'700'000'000);
    w.boolean(false);
    const std::optional<std::string> phone = "+44";
    CHECK(written(std::uint64_t{42}, std::string("ada@example.org"), role::admin, phone,
                  std::chrono::duration<std::int64_t>(1'700'000'000),
                  std::optional<std::chrono::seconds>()) == by_hand);
}

TEST_CASE("byte_reader::read: every helper round-trips") {
    using namespace std::chrono;
    check_helper_round_trip(std::int8_t{-128});
    check_helper_round_trip(std::int16_t{-300});
    check_helper_round_trip(std::numeric_limits<std::int32_t>::min());
    check_helper_round_trip(std::numeric_limits<std::uint64_t>::max());
    check_helper_round_trip('z');
    check_helper_round_trip(std::byte{0xFF});
    check_helper_round_trip(-0.1f);
    check_helper_round_trip(std::numeric_limits<float>::infinity());
    check_helper_round_trip(role::staff);
    check_helper_round_trip(colour::blue);
    check_helper_round_trip(std::string("text\0with nul", 13));
    check_helper_round_trip(nanoseconds(std::numeric_limits<std::int64_t>::min()));
    check_helper_round_trip(hours(-5));
    check_helper_round_trip(duration<double, std::milli>(1.25));
    check_helper_round_trip(duration<std::uint16_t, std::ratio<60>>(65535));
    check_helper_round_trip(system_clock::time_point::max());
    check_helper_round_trip(steady_clock::time_point(steady_clock::duration(-7)));
    check_helper_round_trip(sys_days(days(19'000)));
    check_helper_round_trip(std::optional<std::string>());
    check_helper_round_trip(std::optional<std::string>(""));
    check_helper_round_trip(std::optional<std::optional<bool>>(std::optional<bool>()));
    check_helper_round_trip(std::vector<std::string>{"a", "", "c"});
    check_helper_round_trip(std::vector<std::vector<std::int16_t>>{{1, -1}, {}, {3}});
    check_helper_round_trip(std::deque<double>{0.5, -2.0});
    check_helper_round_trip(std::list<role>{role::admin, role::customer});
    check_helper_round_trip(std::vector<bool>{true, false, true});
    check_helper_round_trip(std::vector<std::int8_t>{-1, 0, 1});
    check_helper_round_trip(std::vector<std::byte>());
    check_helper_round_trip(std::set<std::string>{"x", "y"});
    check_helper_round_trip(std::unordered_set<std::uint32_t>{5, 6, 7});
    check_helper_round_trip(std::multiset<int>{1, 1, 2});
    check_helper_round_trip(std::map<std::string, std::vector<address>>{{"home", {{"Oslo", "0150"}}}, {"none", {}}});
    check_helper_round_trip(std::unordered_map<std::int64_t, std::optional<std::string>>{{-1, "x"}, {2, std::nullopt}});
    check_helper_round_trip(std::multimap<int, int>{{1, 2}, {1, 3}});
    check_helper_round_trip(address{"Turin", "10121"});
    check_helper_round_trip(std::vector<empty_record>());
    check_helper_round_trip(sample_profile());
}

TEST_CASE("byte_reader::read: every truncation of each helper's encoding fails and consumes nothing") {
    using namespace std::chrono;
    check_every_truncation_fails(std::int16_t{-300});
    check_every_truncation_fails(-0.1f);
    check_every_truncation_fails(role::staff);
    check_every_truncation_fails(milliseconds(5));
    check_every_truncation_fails(system_clock::time_point(seconds(1)));
    check_every_truncation_fails(std::optional<std::string>("abc"));
    check_every_truncation_fails(std::vector<std::string>{"a", "bc"});
    check_every_truncation_fails(std::vector<std::uint8_t>{1, 2, 3});
    check_every_truncation_fails(std::set<std::uint32_t>{1, 2});
    check_every_truncation_fails(std::map<std::string, std::int64_t>{{"a", 1}, {"b", 2}});
    check_every_truncation_fails(address{"Turin", "10121"});
    check_every_truncation_fails(sample_profile());
}

TEST_CASE("byte_reader::read: a count beyond the bytes left fails naming the field, without allocating it") {
    SECTION("a sequence of 8-byte elements that claims 0x0FFFFFFF of them in 12 bytes") {
        const auto bytes = bytes_of({0xFF, 0xFF, 0xFF, 0x0F, 1, 2, 3, 4, 5, 6, 7, 8});
        tierguard::byte_reader r(bytes);
        tierguard_test::largest_allocation = 0;
        const auto back = r.read<std::vector<std::uint64_t>>("timestamps");
        REQUIRE_FALSE(back);
        CHECK(back.error().code() == errc::serialization_failed);
        CHECK(back.error().context() ==
              "byte_reader: field 'timestamps' at offset 0 counts 268435455 elements of at least 8 bytes, only 8 "
              "bytes follow");
        CHECK(tierguard_test::largest_allocation < 1024);
        CHECK(r.offset() == 0);
    }
    SECTION("a count that fits only if elements took no room: 9 strings in 32 bytes") {
        auto bytes = bytes_of({9, 0, 0, 0});
        bytes.resize(4 + 32);
        const auto back = read_back<std::vector<std::string>>(bytes, "names");
        REQUIRE_FALSE(back);
        CHECK(back.error().context().find("field 'names' at offset 0 counts 9 elements of at least 4 bytes") !=
              std::string::npos);
    }
    SECTION("a map whose count exceeds the entries that can follow") {
        const auto bytes = bytes_of({0xFF, 0xFF, 0xFF, 0xFF, 1, 1});
        tierguard_test::largest_allocation = 0;
        const auto back = read_back<std::map<std::uint8_t, bool>>(bytes, "flags");
        REQUIRE_FALSE(back);
        CHECK(back.error().context().find("field 'flags' at offset 0 counts 4294967295 elements") != std::string::npos);
        CHECK(tierguard_test::largest_allocation < 1024);
    }
    SECTION("a byte vector's length beyond the input") {
        const auto back = read_back<std::vector<std::uint8_t>>(bytes_of({0xFF, 0xFF, 0xFF, 0xFF, 1}), "avatar");
        REQUIRE_FALSE(back);
        CHECK(back.error().context().find("field 'avatar' at offset 0 has length 4294967295") != std::string::npos);
    }
    SECTION("a string nested in a sequence") {
        const auto bytes = written(std::uint32_t{1}, std::uint32_t{1000}, 'x');
        const auto back = read_back<std::vector<std::string>>(bytes, "names");
        REQUIRE_FALSE(back);
        CHECK(back.error().context() ==
              "byte_reader: field 'names' element 0: at offset 4 has length 1000, only 1 bytes follow");
    }
}

TEST_CASE("byte_reader::read: an enum outside its enum_range is an error naming the field") {
    SECTION("a contiguous range") {
        const auto back = read_back<role>(bytes_of({3}), "role");
        REQUIRE_FALSE(back);
        CHECK(back.error().code() == errc::serialization_failed);
        CHECK(back.error().context() == "byte_reader: field 'role' at offset 0 holds 3, outside the enum_range 0..2");
    }
    SECTION("a sparse enumeration's contains()") {
        for (const std::uint16_t raw : {0, 3, 0x1233, 0xFFFF}) {
            const auto back = read_back<colour>(written(raw), "favourite");
            REQUIRE_FALSE(back);
            CHECK(back.error().context() == "byte_reader: field 'favourite' at offset 0 holds " + std::to_string(raw) +
                                                ", which enum_range::contains refuses");
        }
        CHECK(read_back<colour>(written(std::uint16_t{2})).value() == colour::green);
    }
    SECTION("as a map's value") {
        const auto bytes = written(std::uint32_t{1}, std::string("ada"), std::uint8_t{7});
        const auto back = read_back<std::map<std::string, role>>(bytes, "roles");
        REQUIRE_FALSE(back);
        CHECK(back.error().context() ==
              "byte_reader: field 'roles' entry 0 value: at offset 11 holds 7, outside the enum_range 0..2");
    }
    SECTION("a reader positioned after a failure reads the same bytes again") {
        const auto bytes = bytes_of({5});
        tierguard::byte_reader r(bytes);
        REQUIRE_FALSE(r.read<role>("role"));
        CHECK(r.offset() == 0);
        CHECK(r.u8().value() == 5);
    }
}

TEST_CASE("byte_reader::read: what an encoder never writes is refused") {
    SECTION("a map key twice") {
        const auto bytes = written(std::uint32_t{2}, std::uint8_t{1}, true, std::uint8_t{1}, false);
        const auto back = read_back<std::map<std::uint8_t, bool>>(bytes, "flags");
        REQUIRE_FALSE(back);
        CHECK(back.error().context().find("field 'flags'") != std::string::npos);
        CHECK(back.error().context().find("repeats a key at entry 1") != std::string::npos);
    }
    SECTION("a set element twice") {
        const auto bytes = written(std::vector<std::string>{"a", "a"});
        const auto back = read_back<std::set<std::string>>(bytes, "tags");
        REQUIRE_FALSE(back);
        CHECK(back.error().context().find("repeats element 1") != std::string::npos);
        CHECK(read_back<std::multiset<std::string>>(bytes).value().size() == 2);
    }
    SECTION("a float that no float encodes to") {
        for (const double wide : {1e300, -1e39, 0.1}) {
            const auto back = read_back<float>(written(wide), "ratio");
            REQUIRE_FALSE(back);
            CHECK(back.error().context().find("field 'ratio' at offset 0 holds") != std::string::npos);
        }
        CHECK(std::isnan(read_back<float>(written(std::numeric_limits<double>::quiet_NaN())).value()));
    }
    SECTION("a presence byte of 2") {
        const auto back = read_back<std::optional<std::string>>(bytes_of({2}), "nickname");
        REQUIRE_FALSE(back);
        CHECK(back.error().context() == "byte_reader: field 'nickname' at offset 0 holds 2, a bool must be 0 or 1");
    }
}

TEST_CASE("byte_reader::read: a failure inside a nested codec names the outer field and the inner one") {
    auto bytes = written(std::vector<address>{{"Oslo", std::nullopt}, {"Rome", std::nullopt}});
    bytes.back() = std::byte{3};  // Rome's postcode presence byte
    const auto back = read_back<std::vector<address>>(bytes, "past");
    REQUIRE_FALSE(back);
    CHECK(back.error().context() == "byte_reader: field 'past' element 1: field 'postcode' at offset " +
                                        std::to_string(bytes.size() - 1) + " holds 3, a bool must be 0 or 1");
}

TEST_CASE("byte_reader: the error messages docs/POLICIES.md quotes") {
    const auto context_of = [](const auto& result) {
        return result ? std::string("no error") : result.error().context();
    };
    CHECK(context_of(read_back<std::vector<role>>(bytes_of({2, 0, 0, 0, 1, 9}), "roles")) ==
          "byte_reader: field 'roles' element 1: at offset 5 holds 9, outside the enum_range 0..2");
    CHECK(context_of(read_back<address>(written(std::string("Oslo"), std::uint8_t{7}), "home")) ==
          "byte_reader: field 'home': field 'postcode' at offset 8 holds 7, a bool must be 0 or 1");
    CHECK(context_of(read_back<std::map<std::uint8_t, bool>>(bytes_of({0xFF, 0xFF, 0xFF, 0xFF, 1, 1}), "flags")) ==
          "byte_reader: field 'flags' at offset 0 counts 4294967295 elements of at least 2 bytes, only 2 bytes follow");
    CHECK(context_of(read_back<std::string>(bytes_of({0xFF, 0xFF, 0xFF, 0xFF, 'h', 'i'}), "name")) ==
          "byte_reader: field 'name' at offset 0 has length 4294967295, only 2 bytes follow");
    CHECK(context_of(read_back<float>(written(1e300), "ratio")) ==
          "byte_reader: field 'ratio' at offset 0 holds 1e+300, which a float cannot hold exactly");
    CHECK(context_of(read_back<colour>(written(std::uint16_t{3}), "favourite")) ==
          "byte_reader: field 'favourite' at offset 0 holds 3, which enum_range::contains refuses");
    CHECK(context_of(read_back<std::multimap<int, int>>(written(std::uint32_t{2}, 1, 2, 1, 3), "pairs")) == "no error");
}

TEST_CASE("byte_reader::read: an error deep inside nested containers names each level") {
    // A vector of one map, {"ops": [admin, 9]}.
    const auto nested =
        written(std::uint32_t{1}, std::uint32_t{1}, std::string("ops"), std::uint32_t{2}, role::admin, std::uint8_t{9});
    const auto deep = read_back<std::vector<std::map<std::string, std::vector<role>>>>(nested, "teams");
    REQUIRE_FALSE(deep);
    CHECK(deep.error().context() ==
          "byte_reader: field 'teams' element 0: entry 0 value: element 1: at offset 20 holds 9, outside the "
          "enum_range 0..2");
}

TEST_CASE("byte_reader::read_fields: assigns in order, stops at the first error and consumes nothing") {
    const auto bytes = written(std::uint64_t{7}, std::string("ada"), std::uint8_t{9});
    tierguard::byte_reader r(bytes);
    std::uint64_t id = 0;
    std::string name;
    role user_role = role::customer;
    const auto ok =
        r.read_fields(tierguard::field("id", id), tierguard::field("name", name), tierguard::field("role", user_role));
    REQUIRE_FALSE(ok);
    CHECK(ok.error().context().find("field 'role'") != std::string::npos);
    CHECK(r.offset() == 0);
    CHECK(id == 7);
    CHECK(name == "ada");
    CHECK(user_role == role::customer);
}

TEST_CASE("byte_writer: an element that encodes to no bytes is refused, so counts stay bounded") {
    std::vector<std::byte> out;
    tierguard::byte_writer w(out);
    w.write(std::vector<empty_record>(3));
    const auto status = w.status();
    REQUIRE_FALSE(status);
    CHECK(status.error().code() == errc::serialization_failed);
    CHECK(status.error().context().find("encodes to no bytes") != std::string::npos);
}

namespace {
// Says it holds 2^32 elements and has none: the writer must refuse the count before visiting any.
struct claims_four_gib {
    [[nodiscard]] const std::uint64_t* begin() const { return nullptr; }
    [[nodiscard]] const std::uint64_t* end() const { return nullptr; }
    [[nodiscard]] std::size_t size() const { return std::size_t{1} << 32; }
};
}  // namespace

TEST_CASE("byte_writer: a sequence longer than a u32 count is refused as too_large, nothing written") {
    std::vector<std::byte> out = bytes_of({0xAA});
    tierguard::byte_writer w(out);
    w.write(claims_four_gib{});
    w.u8(1);
    const auto status = w.status();
    REQUIRE_FALSE(status);
    CHECK(status.error().code() == errc::too_large);
    CHECK(status.error().context() ==
          "byte_writer: a sequence of 4294967296 elements exceeds the 4294967295 a u32 count can describe");
    CHECK(out == bytes_of({0xAA, 1}));
}

TEST_CASE("byte_writer: a counting writer measures without allocating") {
    const profile p = sample_profile();
    const auto real = encode_ok(p).size();
    tierguard_test::allocations = 0;
    tierguard::byte_writer counter;
    counter.write(p);
    CHECK(tierguard_test::allocations == 0);
    CHECK(counter.size() == real);
    CHECK(counter.status());
}

TEST_CASE("codec helpers: property: a random record survives encode and decode unchanged") {
    tierguard_test::check_property("profile round trip", [] {
        profile p;
        p.id = *rc::gen::arbitrary<std::uint64_t>();
        p.karma = *rc::gen::arbitrary<std::int32_t>();
        p.name = *rc::gen::arbitrary<std::string>();
        p.roles = *rc::gen::container<std::vector<role>>(rc::gen::element(role::customer, role::staff, role::admin));
        p.home.city = *rc::gen::arbitrary<std::string>();
        if (*rc::gen::arbitrary<bool>()) p.home.postcode = *rc::gen::arbitrary<std::string>();
        const auto count = *rc::gen::inRange<std::size_t>(0, 4);
        for (std::size_t i = 0; i < count; ++i) p.past.push_back({*rc::gen::arbitrary<std::string>(), std::nullopt});
        p.counters = *rc::gen::arbitrary<std::map<std::string, std::int64_t>>();
        p.labels = *rc::gen::arbitrary<std::unordered_map<std::uint32_t, std::string>>();
        p.tags = *rc::gen::arbitrary<std::set<std::string>>();
        if (*rc::gen::arbitrary<bool>())
            p.last_seen = std::chrono::system_clock::time_point(
                std::chrono::system_clock::duration(*rc::gen::arbitrary<std::int64_t>()));
        p.session_ttl = std::chrono::milliseconds(*rc::gen::arbitrary<std::int64_t>());
        p.window = std::chrono::duration<double>(static_cast<double>(*rc::gen::arbitrary<std::int32_t>()) / 64);
        p.avatar = *rc::gen::arbitrary<std::vector<std::uint8_t>>();
        p.active = *rc::gen::arbitrary<bool>();

        std::vector<std::byte> bytes;
        RC_ASSERT(standard{}.encode(p, bytes));
        const auto back = standard{}.decode(bytes, std::type_identity<profile>{});
        RC_ASSERT(back.has_value());
        RC_ASSERT(*back == p);
        // A random cut is an error, never a shorter record.
        const auto cut = *rc::gen::inRange<std::size_t>(0, bytes.size());
        RC_ASSERT(!standard{}.decode(std::span(bytes).first(cut), std::type_identity<profile>{}));
    });
}

TEST_CASE("codec helpers: property: arbitrary bytes decode to a record or an error, never beyond the input") {
    tierguard_test::check_property("arbitrary bytes", [] {
        // Random bytes, or a real record with a few bytes overwritten (which gets past the first fields).
        std::vector<std::byte> bytes;
        if (*rc::gen::arbitrary<bool>()) {
            for (const std::uint8_t b : *rc::gen::arbitrary<std::vector<std::uint8_t>>()) bytes.push_back(std::byte{b});
        } else {
            bytes = encode_ok(sample_profile());
            const auto changes = *rc::gen::inRange<std::size_t>(1, 4);
            for (std::size_t i = 0; i < changes; ++i)
                bytes[*rc::gen::inRange<std::size_t>(0, bytes.size())] = std::byte{*rc::gen::arbitrary<std::uint8_t>()};
        }
        tierguard_test::largest_allocation = 0;
        const auto back = standard{}.decode(bytes, std::type_identity<profile>{});
        // Every container holds at most one element per input byte: no allocation is much larger than the input.
        RC_ASSERT(tierguard_test::largest_allocation <= 256 * (bytes.size() + 16));
        if (back) {
            std::vector<std::byte> again;
            RC_ASSERT(standard{}.encode(*back, again));
            RC_ASSERT(again.size() == bytes.size());
        }
    });
}
