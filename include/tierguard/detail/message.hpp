#pragma once

#include <tierguard/detail/build_requirements.hpp>

#include <cstddef>
#include <initializer_list>
#include <string>
#include <string_view>

namespace tierguard::detail {

/// The parts joined into one string, for a failure's context: one out-of-line call where a
/// chain of std::string `+` would put a temporary, a move and an exception cleanup per
/// part inline at every failure site, compiled again in every translation unit. Cold: the
/// call marks its path as the unlikely one.
[[nodiscard, gnu::cold, gnu::noinline]] inline std::string concat(std::initializer_list<std::string_view> parts) {
    std::size_t size = 0;
    for (const std::string_view part : parts) size += part.size();
    std::string out;
    out.reserve(size);
    for (const std::string_view part : parts) out += part;
    return out;
}

}  // namespace tierguard::detail
