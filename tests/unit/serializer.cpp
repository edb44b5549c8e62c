#include "support/test_framework.hpp"

#include <tierguard/serializer/codec.hpp>
#include <tierguard/serializer/concept.hpp>
#include <tierguard/serializer/standard.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

using tierguard::errc;

namespace {

// Seed 003's user record: the cached value whose serialization lost fields in production.
enum class role : std::uint8_t { customer, staff, admin };
enum class account_status : std::uint8_t { active, suspended, deleted };

struct user_record {
    std::uint64_t id = 0;
    std::string email;
    std::string first_name;
    std::string last_name;
    role user_role = role::customer;
    account_status status = account_status::active;
    std::optional<std::string> phone_number;
    bool email_verified = false;
    std::chrono::system_clock::time_point created_at;
    std::optional<std::chrono::system_clock::time_point> last_login_at;

    friend bool operator==(const user_record&, const user_record&) = default;
};

user_record sample_user() {
    using namespace std::chrono;
    user_record u;
    u.id = 42;
    u.email = "ada@example.org";
    u.first_name = "Ada";
    u.last_name = "Lovelace";
    u.user_role = role::admin;
    u.status = account_status::active;
    u.phone_number = "+44 20 7946 0000";
    u.email_verified = true;
    u.created_at =
        system_clock::time_point(duration_cast<system_clock::duration>(nanoseconds(1'700'000'000'000'000'000)));
    u.last_login_at = u.created_at + hours(36);
    return u;
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
struct tierguard::value_traits<user_record> {
    static constexpr std::uint32_t schema_version = 2;
};

template <>
struct tierguard::codec<user_record> {
    static void encode(const user_record& u, tierguard::byte_writer& w) {
        w.u64(u.id);
        w.string(u.email);
        w.string(u.first_name);
        w.string(u.last_name);
        w.u8(static_cast<std::uint8_t>(u.user_role));
        w.u8(static_cast<std::uint8_t>(u.status));
        w.boolean(u.phone_number.has_value());
        if (u.phone_number) w.string(*u.phone_number);
        w.boolean(u.email_verified);
        w.i64(nanos(u.created_at));
        w.boolean(u.last_login_at.has_value());
        if (u.last_login_at) w.i64(nanos(*u.last_login_at));
    }

    static tierguard::result<user_record> decode(tierguard::byte_reader& r) {
        user_record u;
        auto id = r.u64("id");
        if (!id) return tierguard::unexpected(std::move(id).error());
        u.id = *id;
        for (auto [field, target] : {std::pair{"email", &u.email}, std::pair{"first_name", &u.first_name},
                                     std::pair{"last_name", &u.last_name}}) {
            auto text = r.string(field);
            if (!text) return tierguard::unexpected(std::move(text).error());
            *target = std::move(*text);
        }
        auto user_role = r.u8("role");
        if (!user_role) return tierguard::unexpected(std::move(user_role).error());
        if (*user_role > static_cast<std::uint8_t>(role::admin))
            return tierguard::fail(errc::serialization_failed, tierguard::tier::disk, "user_record: unknown role");
        u.user_role = static_cast<role>(*user_role);
        auto status = r.u8("status");
        if (!status) return tierguard::unexpected(std::move(status).error());
        if (*status > static_cast<std::uint8_t>(account_status::deleted))
            return tierguard::fail(errc::serialization_failed, tierguard::tier::disk, "user_record: unknown status");
        u.status = static_cast<account_status>(*status);
        auto has_phone = r.boolean("phone_number?");
        if (!has_phone) return tierguard::unexpected(std::move(has_phone).error());
        if (*has_phone) {
            auto phone = r.string("phone_number");
            if (!phone) return tierguard::unexpected(std::move(phone).error());
            u.phone_number = std::move(*phone);
        }
        auto verified = r.boolean("email_verified");
        if (!verified) return tierguard::unexpected(std::move(verified).error());
        u.email_verified = *verified;
        auto created = r.i64("created_at");
        if (!created) return tierguard::unexpected(std::move(created).error());
        u.created_at = time_at(*created);
        auto has_login = r.boolean("last_login_at?");
        if (!has_login) return tierguard::unexpected(std::move(has_login).error());
        if (*has_login) {
            auto login = r.i64("last_login_at");
            if (!login) return tierguard::unexpected(std::move(login).error());
            u.last_login_at = time_at(*login);
        }
        return u;
    }

private:
    static std::int64_t nanos(std::chrono::system_clock::time_point t) {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
    }
    static std::chrono::system_clock::time_point time_at(std::int64_t ns) {
        return std::chrono::system_clock::time_point(
            std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(ns)));
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
static_assert(tierguard::serializer_policy<standard, user_record>);
static_assert(tierguard::serializer_policy<standard, versioned_id>);
static_assert(tierguard::has_codec<user_record>);
static_assert(!tierguard::has_codec<plain_point>);
// Neither a codec, raw bytes, nor trivially copyable: the policy does not apply.
static_assert(!tierguard::serializer_policy<standard, no_encoding>);
static_assert(!tierguard::serializer_policy<standard, std::map<int, int>>);
static_assert(!tierguard::serializer_policy<standard, int*>);
static_assert(tierguard::value_traits<user_record>::schema_version == 2);
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
    const user_record full = sample_user();
    check_round_trip(full);

    user_record sparse = full;
    sparse.phone_number.reset();
    sparse.last_login_at.reset();
    sparse.email.clear();
    sparse.user_role = role::customer;
    sparse.status = account_status::suspended;
    sparse.email_verified = false;
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
    const auto bytes = encode_ok(sample_user());
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        const auto back = decode_as<user_record>(std::span(bytes).first(n));
        INFO("truncated to " << n << " of " << bytes.size() << " bytes");
        REQUIRE_FALSE(back);
        CHECK(back.error().code() == errc::serialization_failed);
        CHECK_FALSE(back.error().context().empty());
    }
}

TEST_CASE("standard serializer: trailing bytes after a record are an error") {
    auto bytes = encode_ok(sample_user());
    bytes.push_back(std::byte{0});
    const auto back = decode_as<user_record>(bytes);
    REQUIRE_FALSE(back);
    CHECK(back.error().code() == errc::serialization_failed);
    CHECK(back.error().context().find("unread") != std::string::npos);
}

TEST_CASE("standard serializer: garbage is refused as a record") {
    SECTION("all 0xFF: the first string length is far beyond the input") {
        const std::vector<std::byte> garbage(64, std::byte{0xFF});
        const auto back = decode_as<user_record>(garbage);
        REQUIRE_FALSE(back);
        CHECK(back.error().code() == errc::serialization_failed);
        CHECK(back.error().context().find("email") != std::string::npos);
    }
    SECTION("an out-of-range enum") {
        auto bytes = encode_ok(sample_user());
        // id (8) + three strings (4 + length each): the role byte follows.
        const auto u = sample_user();
        const std::size_t role_at = 8 + 4 + u.email.size() + 4 + u.first_name.size() + 4 + u.last_name.size();
        REQUIRE(bytes[role_at] == std::byte{static_cast<std::uint8_t>(role::admin)});
        bytes[role_at] = std::byte{9};
        const auto back = decode_as<user_record>(bytes);
        REQUIRE_FALSE(back);
        CHECK(back.error().code() == errc::serialization_failed);
    }
    SECTION("an optional's presence flag that is neither 0 nor 1") {
        auto bytes = encode_ok(sample_user());
        const auto u = sample_user();
        const std::size_t flag_at = 8 + 4 + u.email.size() + 4 + u.first_name.size() + 4 + u.last_name.size() + 2;
        REQUIRE(bytes[flag_at] == std::byte{1});
        bytes[flag_at] = std::byte{7};
        const auto back = decode_as<user_record>(bytes);
        REQUIRE_FALSE(back);
        CHECK(back.error().context().find("phone_number?") != std::string::npos);
    }
    SECTION("an empty input") {
        const auto back = decode_as<user_record>({});
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
