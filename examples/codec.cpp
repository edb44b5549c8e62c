// Your own record type through tierguard's codec (tierguard/serializer/codec.hpp): a
// ten-field user record written with byte_writer::write and read back with
// byte_reader::read_fields, whose helpers cover strings, ranged enums, optionals and
// std::chrono time points (and sequences, maps and nested codecs; docs/POLICIES.md lists
// them all). Decoding validates: a damaged or truncated entry is an error naming the
// field, never a half-filled record. Built and run by CI; installed with the docs.
#include <tierguard/tierguard.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

enum class role : std::uint8_t { customer, staff, admin };
enum class account_status : std::uint8_t { active, suspended, deleted };

// The range check a byte_reader applies to each enum it reads.
template <>
struct tierguard::enum_range<role> {
    static constexpr role first = role::customer;
    static constexpr role last = role::admin;
};
template <>
struct tierguard::enum_range<account_status> {
    static constexpr account_status first = account_status::active;
    static constexpr account_status last = account_status::deleted;
};

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

template <>
struct tierguard::value_traits<user_record> {
    static constexpr std::uint32_t schema_version = 2;  // bump whenever the encoding changes
};

// Every field, in one order for both directions.
template <>
struct tierguard::codec<user_record> {
    static void encode(const user_record& u, tierguard::byte_writer& w) {
        w.write(u.id, u.email, u.first_name, u.last_name, u.user_role, u.status, u.phone_number, u.email_verified,
                u.created_at, u.last_login_at);
    }
    static tierguard::result<user_record> decode(tierguard::byte_reader& r) {
        using tierguard::field;
        user_record u;
        auto ok = r.read_fields(field("id", u.id), field("email", u.email), field("first_name", u.first_name),
                                field("last_name", u.last_name), field("role", u.user_role), field("status", u.status),
                                field("phone_number", u.phone_number), field("email_verified", u.email_verified),
                                field("created_at", u.created_at), field("last_login_at", u.last_login_at));
        if (!ok) return tierguard::unexpected(std::move(ok).error());
        return u;
    }
};

int main() {
    using namespace std::chrono;
    user_record ada;
    ada.id = 42;
    ada.email = "ada@example.org";
    ada.first_name = "Ada";
    ada.last_name = "Lovelace";
    ada.user_role = role::admin;
    ada.phone_number = "+44 20 7946 0000";
    ada.email_verified = true;
    ada.created_at = system_clock::time_point(duration_cast<system_clock::duration>(seconds(1'700'000'000)));
    ada.last_login_at = ada.created_at + hours(36);

    // What a disk or remote tier stores: serializer::standard calls the codec.
    const tierguard::serializer::standard serializer;
    std::vector<std::byte> bytes;
    if (auto ok = serializer.encode(ada, bytes); !ok) return std::printf("%s\n", ok.error().message().c_str()), 1;
    const auto back = serializer.decode(bytes, std::type_identity<user_record>{});
    if (!back) return std::printf("%s\n", back.error().message().c_str()), 1;
    std::printf("user %llu encoded in %zu bytes; decoded %s %s <%s>, phone %s: %s\n",
                static_cast<unsigned long long>(back->id), bytes.size(), back->first_name.c_str(),
                back->last_name.c_str(), back->email.c_str(), back->phone_number.value_or("none").c_str(),
                *back == ada ? "every field equal" : "FIELDS DIFFER");

    // A truncated entry (a torn write, a short read): an error naming the field, no record.
    const auto truncated = serializer.decode(std::span(bytes).first(30), std::type_identity<user_record>{});
    std::printf("truncated to 30 bytes: %s\n", truncated ? "decoded?!" : truncated.error().message().c_str());

    // A role byte no release ever wrote: the enum's range check refuses it.
    std::vector<std::byte> damaged = bytes;
    const std::size_t role_at = 8 + (4 + ada.email.size()) + (4 + ada.first_name.size()) + (4 + ada.last_name.size());
    damaged[role_at] = std::byte{9};
    const auto bad_role = serializer.decode(damaged, std::type_identity<user_record>{});
    std::printf("role byte 9: %s\n", bad_role ? "decoded?!" : bad_role.error().message().c_str());

    // The memory tier's budget counts the encoded size of each entry, not sizeof(user_record).
    struct policies : tierguard::memory_defaults {
        using weigher = tierguard::weigher::encoded_size;
    };
    tierguard::memory_tier<std::string, user_record, policies> users({.byte_budget = 1 << 20, .shards = 1});
    user_record big = ada;
    big.last_name.assign(10 * 1024, 'x');
    if (auto ok = users.put("ada", big); !ok) return std::printf("%s\n", ok.error().message().c_str()), 1;
    std::printf("a record with a 10 KiB last name weighs %zu bytes in the memory tier (sizeof: %zu)\n", users.bytes(),
                sizeof(user_record));

    const bool passed = *back == ada && !truncated && !bad_role && users.bytes() > 10 * 1024;
    std::printf("codec example: %s\n", passed ? "ok" : "FAILED");
    return passed ? 0 : 1;
}
