#pragma once

#include <tierguard/detail/entropy.hpp>
#include <tierguard/frame.hpp>
#include <tierguard/result.hpp>
#include <tierguard/storage/concept.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tierguard::detail {

/// The 128-bit SipHash key a storage keeps under blob `name` (a frame whose key is the
/// name and whose payload is 16 bytes), made from the system's random source
/// (random_secret) and written when absent. A damaged secret (or something unreadable in its place) is quarantined and
/// replaced, and `replaced_damaged` set: the blobs named under the old secret then
/// become orphans for a cleanup. Fails only if the storage cannot be read or written, or
/// (errc::miss, errc::corrupted) if the secret is absent or damaged and `make` is false.
template <storage_policy Storage>
[[nodiscard]] result<std::array<std::uint64_t, 2>> load_or_make_secret(Storage& storage, std::string_view name,
                                                                       std::chrono::system_clock::time_point now,
                                                                       bool& replaced_damaged, bool make = true) {
    replaced_damaged = false;
    const std::span<const std::byte> frame_key(reinterpret_cast<const std::byte*>(name.data()), name.size());
    auto to_words = [](std::span<const std::byte> bytes) {
        std::array<std::uint64_t, 2> secret{};
        for (std::size_t i = 0; i < 16; ++i)
            secret[i / 8] |= std::uint64_t{std::to_integer<std::uint8_t>(bytes[i])} << (8 * (i % 8));
        return secret;
    };
    auto bytes = storage.read(name);
    if (bytes) {
        auto decoded = frame::decode(*bytes);
        if (decoded && decoded->payload.size() == 16 && std::ranges::equal(decoded->key, frame_key))
            return to_words(decoded->payload);
    } else if (const errc code = bytes.error().code();
               code != errc::miss && code != errc::corrupted && code != errc::too_large) {
        return unexpected(std::move(bytes).error());
    }
    if (!make)
        return fail(bytes ? errc::corrupted : bytes.error().code(), tier::disk,
                    "the hash secret " + std::string(name) + (bytes ? " is damaged" : " cannot be read"));
    if (bytes || bytes.error().code() != errc::miss) {
        replaced_damaged = true;
        (void)storage.quarantine(name, "secret", now);
    }
    auto random = random_secret(tier::disk);
    if (!random) return unexpected(std::move(random).error());
    const std::array<std::byte, 16> fresh = *random;
    std::vector<std::byte> blob;
    if (auto ok = frame::encode(frame_key, fresh, 1, 0, 0, blob); !ok) return unexpected(std::move(ok).error());
    if (auto ok = storage.write(name, blob); !ok) return unexpected(std::move(ok).error());
    return to_words(fresh);
}

}  // namespace tierguard::detail
