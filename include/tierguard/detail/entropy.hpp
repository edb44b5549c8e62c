#pragma once

#include <tierguard/detail/os_error.hpp>
#include <tierguard/result.hpp>

#include <array>
#include <cerrno>
#include <cstddef>
#include <string_view>

#include <unistd.h>
#if defined(__APPLE__)
#include <sys/random.h>
#endif

namespace tierguard::detail {

/// 16 bytes from the operating system's random source (getentropy(3): the getrandom
/// system call on Linux), for a directory's hash secret or a cache's invalidation sender
/// id. Replaces std::random_device, whose <random> costs every translation unit ~0.2 s
/// and ~60 MB to compile. Fails, with the errno classified by os_failure and `step` as
/// the context, only if the kernel cannot supply entropy.
[[nodiscard]] inline result<std::array<std::byte, 16>> random_secret(
    tier where, std::string_view step = "no random bytes for the hash secret") {
    std::array<std::byte, 16> bytes{};
    if (::getentropy(bytes.data(), bytes.size()) != 0)
        return unexpected(os_failure(errno, "getentropy", {}, step, where));
    return bytes;
}

}  // namespace tierguard::detail
