// A user's own record type on disk: a codec<T> specialization (the serializer's
// customization point, tierguard/serializer/codec.hpp) and a schema version. When the
// encoding changes, bumping the version turns every old entry into a counted miss, removed
// on first read: no manual flush, and old bytes are never decoded as the new type.
#include "scratch_dir.hpp"

#include <tierguard/tierguard.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

// Release 1 of the record.
struct user_v1 {
    std::uint64_t id = 0;
    std::string email;
    bool email_verified = false;
};

// Release 2 added a phone number, so its bytes mean something else: schema version 2.
struct user_v2 {
    std::uint64_t id = 0;
    std::string email;
    std::optional<std::string> phone;
    bool email_verified = false;
};

template <>
struct tierguard::value_traits<user_v1> {
    static constexpr std::uint32_t schema_version = 1;
};
template <>
struct tierguard::value_traits<user_v2> {
    static constexpr std::uint32_t schema_version = 2;  // bump whenever the encoding changes
};

// Each codec writes every field and reads them back in the same order; a decode returns the
// whole record or the first error (never a half-filled one).
template <>
struct tierguard::codec<user_v1> {
    static void encode(const user_v1& u, tierguard::byte_writer& w) {
        w.u64(u.id);
        w.string(u.email);
        w.boolean(u.email_verified);
    }
    static tierguard::result<user_v1> decode(tierguard::byte_reader& r) {
        auto id = r.u64("id");
        if (!id) return tierguard::unexpected(std::move(id).error());
        auto email = r.string("email");
        if (!email) return tierguard::unexpected(std::move(email).error());
        auto verified = r.boolean("email_verified");
        if (!verified) return tierguard::unexpected(std::move(verified).error());
        return user_v1{*id, std::move(*email), *verified};
    }
};

template <>
struct tierguard::codec<user_v2> {
    static void encode(const user_v2& u, tierguard::byte_writer& w) {
        w.u64(u.id);
        w.string(u.email);
        w.boolean(u.phone.has_value());
        if (u.phone) w.string(*u.phone);
        w.boolean(u.email_verified);
    }
    static tierguard::result<user_v2> decode(tierguard::byte_reader& r) {
        user_v2 u;
        auto id = r.u64("id");
        if (!id) return tierguard::unexpected(std::move(id).error());
        u.id = *id;
        auto email = r.string("email");
        if (!email) return tierguard::unexpected(std::move(email).error());
        u.email = std::move(*email);
        auto has_phone = r.boolean("phone?");
        if (!has_phone) return tierguard::unexpected(std::move(has_phone).error());
        if (*has_phone) {
            auto phone = r.string("phone");
            if (!phone) return tierguard::unexpected(std::move(phone).error());
            u.phone = std::move(*phone);
        }
        auto verified = r.boolean("email_verified");
        if (!verified) return tierguard::unexpected(std::move(verified).error());
        u.email_verified = *verified;
        return u;
    }
};

template <class Record>
using user_tier = tierguard::disk_tier<std::string, Record>;

// Opens the directory as one release of the service would (its scrub at open is off here, so
// that the version mismatch shows up on a get).
template <class Record>
tierguard::result<user_tier<Record>> open_release(const std::filesystem::path& root) {
    auto dir = tierguard::storage::posix_directory::open({.root = root});
    if (!dir) return tierguard::unexpected(std::move(dir).error());
    return user_tier<Record>::open(std::move(*dir), {.scrub_on_open = false});
}

int run(const std::filesystem::path& root) {
    {
        auto release1 = open_release<user_v1>(root);
        if (!release1) return std::printf("%s\n", release1.error().message().c_str()), 1;
        (void)release1->put("ada", user_v1{1, "ada@example.org", true});
        const auto ada = release1->get("ada");
        if (!ada) return std::printf("%s\n", ada.error().message().c_str()), 1;
        std::printf("release 1: ada -> id %llu, %s\n", static_cast<unsigned long long>(ada->id), ada->email.c_str());
    }
    // Release 2 is deployed over the same cache directory.
    auto release2 = open_release<user_v2>(root);
    if (!release2) return std::printf("%s\n", release2.error().message().c_str()), 1;
    const auto old = release2->get("ada");
    std::printf("after the schema bump: get ada -> %s (the old entry was removed, version_mismatches=%llu)\n",
                old ? "a value?!" : std::string(to_string(old.error().code())).c_str(),
                static_cast<unsigned long long>(release2->stats().version_mismatches));

    // The caller treats it as a miss: load the record again and store it in the new encoding.
    (void)release2->put("ada", user_v2{1, "ada@example.org", "+44 20 7946 0000", true});
    const auto ada = release2->get("ada");
    if (!ada) return std::printf("%s\n", ada.error().message().c_str()), 1;
    std::printf("release 2: ada -> id %llu, %s, phone %s\n", static_cast<unsigned long long>(ada->id),
                ada->email.c_str(), ada->phone.value_or("none").c_str());
    return !old && old.error().is_miss() && release2->stats().version_mismatches == 1 && ada->phone ? 0 : 1;
}

int main() { return run_in_scratch_dir("cache", run); }
