#pragma once

#include <tierguard/detail/os_error.hpp>
#include <tierguard/result.hpp>

#include <array>
#include <cerrno>
#include <cstddef>

#include <unistd.h>
#if defined(__APPLE__)
#include <sys/random.h>
#endif

namespace tierguard::detail {

/// 16 bytes from the operating system's random source (getentropy(3): the getrandom
/// system call on Linux), for a directory's hash secret. Replaces std::random_device,
/// whose <random> costs every translation unit ~0.2 s and ~60 MB to compile. Fails, with
/// the errno classified by os_failure, only if the kernel cannot supply entropy.
[[nodiscard]] inline result<std::array<std::byte, 16>> random_secret(tier where) {
    std::array<std::byte, 16> bytes{};
    if (::getentropy(bytes.data(), bytes.size()) != 0)
        return unexpected(os_failure(errno, "getentropy", {}, "no random bytes for the hash secret", where));
    return bytes;
}

}  // namespace tierguard::detail
